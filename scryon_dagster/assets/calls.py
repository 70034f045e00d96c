"""The per-call assets: one subsettable multi-asset that carries each call of a batch through the
selected stages and records a materialization per (asset, call) as each call finishes."""

import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from uuid import UUID

import dagster as dg
from dagster._core.definitions.data_version import CODE_VERSION_TAG
from dagster._core.events import DagsterEvent, DagsterEventBatchMetadata, generate_event_batch_id

from scryon_dagster.domain.transcript import NORMALIZATION_VERSION
from scryon_dagster.partitions import BATCH_TAG, calls_partitions
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
# A bump shows every normalized transcript (and what derives from it) as stale in the UI.
_CODE_VERSIONS = {PipelineAsset.NORMALIZED_TRANSCRIPT: f"normalization-v{NORMALIZATION_VERSION}"}
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
    """Per-(asset, call) materializations, handed to Dagster in batches: one per asset, every
    ``MATERIALIZATION_FLUSH_CALLS`` calls, when a call finishes ``MATERIALIZATION_FLUSH_SECONDS`` or more
    after the oldest waiting one, and at the end.

    ``context.log_event`` stores each event on its own (two statements, ~6 ms each on PostgreSQL, three
    events per call). Dagster batches the events it creates for a partitioned output the same way; with
    batch writing on (PooledPostgresStorage turns it on) each batch is one insert. Elsewhere (SQLite) the
    events are stored one by one, as before. The events are also added to the step's own event stream,
    exactly as log_event does. Calls are COMPLETED in Postgres before their materializations reach Dagster;
    a run worker killed between the two leaves at most one flush of them unrecorded in Dagster.
    """

    def __init__(self, context: dg.OpExecutionContext) -> None:
        self._context = context
        self._pending: dict[PipelineAsset, list[dg.AssetMaterialization]] = {}
        self._pending_calls = 0
        self._oldest_pending = 0.0

    def add(self, call_id: UUID, materialized: Mapping[PipelineAsset, Mapping[str, MetadataValue]]) -> None:
        if not self._pending_calls:
            self._oldest_pending = time.monotonic()
        self._pending_calls += 1
        for asset, metadata in materialized.items():
            self._pending.setdefault(asset, []).append(
                dg.AssetMaterialization(
                    asset_key=asset.value,
                    partition=str(call_id),
                    metadata=dict(metadata),
                    # so that the UI's staleness markers compare against the code that produced it
                    tags={CODE_VERSION_TAG: _CODE_VERSIONS[asset]} if asset in _CODE_VERSIONS else None,
                )
            )
        if (
            self._pending_calls >= MATERIALIZATION_FLUSH_CALLS
            or time.monotonic() - self._oldest_pending >= MATERIALIZATION_FLUSH_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        step = self._context._step_execution_context
        for materializations in self._pending.values():
            # one batch per asset: storage updates an asset's latest record from a batch's last event
            batch_id = generate_event_batch_id()
            for index, materialization in enumerate(materializations):
                is_last = index == len(materializations) - 1
                event = DagsterEvent.asset_materialization(
                    step, materialization, DagsterEventBatchMetadata(batch_id, is_last)
                )
                self._context._events.append(event)
        self._pending.clear()
        self._pending_calls = 0


def record_calls(
    context: dg.OpExecutionContext,
    pipeline: PipelineResource,
    call_ids: Sequence[UUID],
    selection: StageSelection,
) -> BatchTally:
    """Run the calls and log one materialization per (asset, succeeded call) as calls finish."""
    batch_tag = context.run.tags.get(BATCH_TAG)
    batch_id = UUID(batch_tag) if batch_tag else None
    tally = BatchTally()
    materializations = MaterializationLog(context)
    try:
        # A pickup batch, or a relaunch of one, only finishes what is still queued; a run launched by
        # hand (no batch) may reprocess finished calls: the operator's explicit choice.
        outcomes = pipeline.run_batch(
            call_ids, selection, batch_id=batch_id, run_id=context.run_id, take_idle=batch_id is None
        )
        for outcome in outcomes:
            tally.count(outcome)
            if outcome.succeeded:
                materializations.add(outcome.call_id, outcome.materialized)
    finally:
        materializations.flush()
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
) -> None:
    """Run one batch of calls given by partition key; fail at the end if any call failed."""
    call_ids = [_call_id(key) for key in call_keys]
    fail_if_any_failed(record_calls(context, pipeline, call_ids, selection), len(call_ids))


def _call_id(partition_key: str) -> UUID:
    try:
        return UUID(partition_key)
    except ValueError:
        raise dg.Failure(description=f"partition key {partition_key!r} is not a call id") from None


@dg.multi_asset(
    name="call_pipeline",
    specs=CALL_ASSET_SPECS,
    can_subset=True,
    description="Carries each call of the run's partitions through the selected stages.",
)
def call_pipeline(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> Iterator[dg.Output[None]]:
    selection = StageSelection.of(key.path[-1] for key in context.selected_asset_keys)
    materialize_calls(context.op_execution_context, pipeline, context.partition_keys, selection)
    # Materializations were logged per (asset, call) above; the multi-asset itself has no outputs.
    yield from ()
