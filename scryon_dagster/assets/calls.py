"""The per-call assets: one subsettable multi-asset that carries each call of a batch through the
selected stages and records a materialization per (asset, call) as each call finishes."""

import contextlib
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from uuid import UUID

import dagster as dg

from scryon_dagster.assets.checks import STORED_ARTIFACTS_CHECKS, stored_artifacts_results
from scryon_dagster.assets.provenance import latest_versions, provenance_tags
from scryon_dagster.dagster_private import log_asset_event_batch
from scryon_dagster.domain.transcript import NORMALIZATION_VERSION
from scryon_dagster.partitions import BATCH_TAG, calls_partitions
from scryon_dagster.pipeline.analysis_stage import ANALYSIS_SCHEMA_VERSION
from scryon_dagster.pipeline.outcomes import CallOutcome, MetadataValue, PipelineAsset, StageSelection
from scryon_dagster.resources import PipelineResource

_DESCRIPTIONS = {
    PipelineAsset.DIARIZATION: "pyannoteAI speaker turns (DIARIZATION_JSON, verbatim provider output).",
    PipelineAsset.RAW_TRANSCRIPT: "Lemonfox verbose_json transcript (RAW_TRANSCRIPT_JSON, verbatim).",
    PipelineAsset.NORMALIZED_TRANSCRIPT: (
        "Speaker-attributed, normalized transcript with speaker naming (NORMALIZED_TRANSCRIPT_JSON)."
    ),
    PipelineAsset.ANALYSIS: "Structured LLM analysis (ANALYSIS_JSON), action items and sentiment summary.",
}
# The versions of the code that derives these assets from their upstream ones: a bump shows every
# partition built by an older version as stale in the UI (and then, once re-derived, what derives from
# it). Provider outputs have none: each materialization of them is a new data version.
_CODE_VERSIONS = {
    PipelineAsset.NORMALIZED_TRANSCRIPT: f"normalization-v{NORMALIZATION_VERSION}",
    PipelineAsset.ANALYSIS: f"analysis-v{ANALYSIS_SCHEMA_VERSION}",
}
# When waiting materializations are handed to Dagster: after this many calls, or once this much time has
# passed since the oldest (checked as calls finish).
MATERIALIZATION_FLUSH_CALLS = 25
MATERIALIZATION_FLUSH_SECONDS = 1.0

CALL_ASSET_SPECS = [
    dg.AssetSpec(
        key=asset.value,
        deps=[dep.value for dep in sorted(asset.upstream)],
        description=_DESCRIPTIONS[asset],
        partitions_def=calls_partitions,
        skippable=True,
        group_name="calls",
        code_version=_CODE_VERSIONS.get(asset),
        kinds={"python"},
    )
    for asset in PipelineAsset
]


class CallBatchFailure(dg.Failure):
    """Raised after every call of a batch ran, so that exactly the failed calls show as failed."""


@dataclass
class BatchTally:
    succeeded: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    """Calls back in the queue for an automatic retry, by the code of their transient failure."""
    left_alone: Counter[str] = field(default_factory=Counter)
    """Calls this run did not take or could not settle (finished already, or left to the sweep)."""

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def add(self, other: "BatchTally") -> None:
        self.succeeded += other.succeeded
        self.failures.update(other.failures)
        self.retries.update(other.retries)
        self.left_alone.update(other.left_alone)

    def count(self, outcome: CallOutcome) -> None:
        if outcome.error_code is not None:
            self.failures[outcome.error_code] += 1
        elif outcome.retry_of is not None:
            self.retries[outcome.retry_of] += 1
        elif outcome.left_alone is not None:
            self.left_alone[outcome.left_alone] += 1
        else:
            self.succeeded += 1

    def summary(self, total: int) -> str:
        parts = [f"{self.succeeded} succeeded", f"{self.failed} failed"]
        if self.retries:
            parts.append(f"{sum(self.retries.values())} re-queued for a retry ({_codes(self.retries)})")
        if self.left_alone:
            parts.append(f"{sum(self.left_alone.values())} left alone ({_codes(self.left_alone)})")
        return f"{', '.join(parts)} of {total}"


def _codes(counts: Counter[str]) -> str:
    return ", ".join(f"{code}x{count}" for code, count in sorted(counts.items()))


class MaterializationLog:
    """Per-(asset, call) materializations, and an observation per planned asset a call did not produce
    saying why, handed to Dagster in batches: one per asset, every ``MATERIALIZATION_FLUSH_CALLS`` calls,
    when a call finishes ``MATERIALIZATION_FLUSH_SECONDS`` or more after the oldest waiting one, and at
    the end.

    ``context.log_event`` stores each event on its own (two statements, ~6 ms each on PostgreSQL, three
    events per call). Dagster batches the events it creates for a partitioned output the same way; with
    batch writing on (PooledPostgresStorage turns it on) each batch is one insert. Elsewhere (SQLite) the
    events are stored one by one, as before. The events are also added to the step's own event stream,
    exactly as log_event does. Calls are COMPLETED in Postgres before their materializations reach Dagster;
    a run worker killed between the two leaves at most one flush of them unrecorded in Dagster.

    Each materialization carries Dagster's provenance tags (``provenance.py``). Assets are flushed in
    dependency order, so a downstream partition's tags point at the upstream materialization stored just
    before it (in this run or an earlier one).
    """

    def __init__(self, context: dg.OpExecutionContext, planned: StageSelection) -> None:
        self._context = context
        self._planned = planned
        self._materialized: dict[PipelineAsset, dict[str, Mapping[str, MetadataValue]]] = {}
        self._not_materialized: dict[PipelineAsset, list[dg.AssetObservation]] = {}
        self._pending_calls = 0
        self._oldest_pending = 0.0

    def add(self, outcome: CallOutcome) -> None:
        if not self._pending_calls:
            self._oldest_pending = time.monotonic()
        self._pending_calls += 1
        call = str(outcome.call_id)
        if outcome.succeeded:
            for asset, metadata in outcome.materialized.items():
                self._materialized.setdefault(asset, {})[call] = metadata
        for asset, reason in outcome.not_materialized(self._planned.assets).items():
            failure = outcome.error_code or outcome.retry_of
            self._not_materialized.setdefault(asset, []).append(
                dg.AssetObservation(
                    asset_key=asset.value,
                    partition=call,
                    description=f"not materialized: {reason}",
                    metadata={
                        "not_materialized": str(reason),
                        **({"call_error_code": str(failure)} if failure else {}),
                    },
                )
            )
        if (
            self._pending_calls >= MATERIALIZATION_FLUSH_CALLS
            or time.monotonic() - self._oldest_pending >= MATERIALIZATION_FLUSH_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        for asset in PipelineAsset:  # dependency order: an upstream batch is stored before it is pointed at
            if by_call := self._materialized.get(asset):
                materializations = self._with_provenance(asset, by_call)
                log_asset_event_batch(self._context, materializations)
            if observations := self._not_materialized.get(asset):
                log_asset_event_batch(self._context, observations)
        self._materialized.clear()
        self._not_materialized.clear()
        self._pending_calls = 0

    def _with_provenance(
        self, asset: PipelineAsset, by_call: Mapping[str, Mapping[str, MetadataValue]]
    ) -> list[dg.AssetMaterialization]:
        return materializations_with_provenance(self._context.instance, asset, by_call, run_id=self._context.run_id)


def materializations_with_provenance(
    instance: dg.DagsterInstance,
    asset: PipelineAsset,
    by_call: Mapping[str, Mapping[str, MetadataValue]],
    *,
    run_id: str,
) -> list[dg.AssetMaterialization]:
    """One materialization per call, tagged with what it was computed from: the latest materializations
    of its upstream partitions (so log upstream assets first) and the code version of ``asset``."""
    calls = list(by_call)
    upstream = {dep: latest_versions(instance, dep, calls) for dep in sorted(asset.upstream)}
    # As Dagster does: an asset without a code version gets a new one (the run id) every run.
    code_version = _CODE_VERSIONS.get(asset, run_id)
    return [
        dg.AssetMaterialization(
            asset_key=asset.value,
            partition=call,
            metadata=dict(metadata),
            tags=provenance_tags(code_version, {dep: versions[call] for dep, versions in upstream.items()}),
        )
        for call, metadata in by_call.items()
    ]


def record_calls(
    context: dg.OpExecutionContext,
    pipeline: PipelineResource,
    call_ids: Sequence[UUID],
    selection: StageSelection,
) -> BatchTally:
    """Run the calls; as calls finish, log one materialization per (asset, succeeded call) and one
    observation per planned asset a call did not produce."""
    batch_tag = context.run.tags.get(BATCH_TAG)
    batch_id = UUID(batch_tag) if batch_tag else None
    tally = BatchTally()
    events = MaterializationLog(context, selection)
    try:
        # A pickup batch, or a relaunch of one, only finishes what is still queued; a run launched by
        # hand (no batch) may reprocess finished calls: the operator's explicit choice.
        outcomes = pipeline.run_batch(
            call_ids, selection, batch_id=batch_id, run_id=context.run_id, take_idle=batch_id is None
        )
        for outcome in outcomes:
            tally.count(outcome)
            events.add(outcome)
    finally:
        events.flush()
    context.log.info(f"batch done: {tally.summary(len(call_ids))}")
    return tally


def fail_if_any_failed(tally: BatchTally, total: int) -> None:
    """Raise after every call ran, so that exactly the failed calls show as failed."""
    if tally.failures:
        summary = _codes(tally.failures)
        raise CallBatchFailure(
            description=f"{tally.failed} of {total} calls failed ({summary})",
            metadata={"failed": tally.failed, "succeeded": tally.succeeded, "error_codes": summary},
        )


def materialize_calls(
    context: dg.OpExecutionContext,
    pipeline: PipelineResource,
    call_keys: Sequence[str],
    selection: StageSelection,
) -> BatchTally:
    """Run one batch of calls given by partition key (all of them calls, or none runs)."""
    call_ids = refuse_unknown_calls(pipeline, call_keys)
    return record_calls(context, pipeline, call_ids, selection)


def refuse_unknown_calls(pipeline: PipelineResource, call_keys: Sequence[str]) -> list[UUID]:
    """The call ids behind the keys; any key that is no call fails the run before anything changes."""
    call_ids: dict[str, UUID] = {}
    for key in call_keys:
        with contextlib.suppress(ValueError):
            call_ids[key] = UUID(key)
    known = pipeline.known_calls(list(call_ids.values()))
    unknown = [key for key in call_keys if call_ids.get(key) not in known]
    if unknown:
        shown = ", ".join(repr(key) for key in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise dg.Failure(
            description=(
                f"{len(unknown)} of {len(call_keys)} partition keys are not calls ({shown}); nothing was run. "
                "A partition of the calls assets is a call id, created when the call is enqueued: "
                "a key added by hand (the Materialize dialog's 'Add a partition') is no call."
            ),
            metadata={"unknown_partition_keys": len(unknown)},
        )
    return [call_ids[key] for key in call_keys]


@dg.multi_asset(
    name="call_pipeline",
    specs=CALL_ASSET_SPECS,
    check_specs=STORED_ARTIFACTS_CHECKS,
    can_subset=True,
    description="Carries each call of the run's partitions through the selected stages.",
)
def call_pipeline(context: dg.AssetExecutionContext, pipeline: PipelineResource):  # no return annotation:
    # Dagster would read it as the outputs. Materializations are logged per (asset, call) as calls finish;
    # the selected checks run after the calls (so whenever their asset was materialized) and before a
    # failed call fails the step.
    tally = None
    if context.selected_asset_keys:
        selection = StageSelection.of(key.path[-1] for key in context.selected_asset_keys)
        tally = materialize_calls(context.op_execution_context, pipeline, context.partition_keys, selection)
    yield from stored_artifacts_results(pipeline, context.selected_asset_check_keys)
    if tally is not None:
        fail_if_any_failed(tally, len(context.partition_keys))
