"""The per-call assets: one subsettable multi-asset that carries each call of a batch through the
selected stages and records a materialization per (asset, call) as each call finishes."""

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from uuid import UUID

import dagster as dg
from dagster._core.definitions.data_version import CODE_VERSION_TAG

from scryon_dagster.domain.transcript import NORMALIZATION_VERSION
from scryon_dagster.partitions import BATCH_TAG, calls_partitions
from scryon_dagster.pipeline.outcomes import PipelineAsset, StageSelection
from scryon_dagster.resources import PipelineResource

_DESCRIPTIONS = {
    PipelineAsset.DIARIZATION: "pyannoteAI speaker turns (DIARIZATION_JSON, verbatim provider output).",
    PipelineAsset.RAW_TRANSCRIPT: "Lemonfox verbose_json transcript (RAW_TRANSCRIPT_JSON, verbatim).",
    PipelineAsset.NORMALIZED_TRANSCRIPT: (
        "Speaker-attributed, normalized transcript with speaker naming (NORMALIZED_TRANSCRIPT_JSON)."
    ),
    PipelineAsset.ANALYSIS: "Structured LLM analysis (ANALYSIS_JSON), action items and sentiment summary.",
}
_DEPS: dict[PipelineAsset, list[PipelineAsset]] = {
    PipelineAsset.DIARIZATION: [],
    PipelineAsset.RAW_TRANSCRIPT: [],
    PipelineAsset.NORMALIZED_TRANSCRIPT: [PipelineAsset.DIARIZATION, PipelineAsset.RAW_TRANSCRIPT],
    PipelineAsset.ANALYSIS: [PipelineAsset.NORMALIZED_TRANSCRIPT],
}
# A bump shows every normalized transcript (and what derives from it) as stale in the UI.
_CODE_VERSIONS = {PipelineAsset.NORMALIZED_TRANSCRIPT: f"normalization-v{NORMALIZATION_VERSION}"}

CALL_ASSET_SPECS = [
    dg.AssetSpec(
        key=asset.value,
        deps=[dep.value for dep in _DEPS[asset]],
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

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def add(self, other: "BatchTally") -> None:
        self.succeeded += other.succeeded
        self.failures.update(other.failures)


def record_calls(
    context: dg.OpExecutionContext,
    pipeline: PipelineResource,
    call_ids: Sequence[UUID],
    selection: StageSelection,
) -> BatchTally:
    """Run the calls and log one materialization per (asset, succeeded call) as each call finishes."""
    batch_tag = context.run.tags.get(BATCH_TAG)
    batch_id = UUID(batch_tag) if batch_tag else None
    tally = BatchTally()
    for outcome in pipeline.run_batch(call_ids, selection, batch_id=batch_id, run_id=context.run_id):
        if not outcome.succeeded:
            tally.failures[outcome.error_code or "unknown"] += 1
            continue
        tally.succeeded += 1
        for asset, metadata in outcome.materialized.items():
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=asset.value,
                    partition=str(outcome.call_id),
                    metadata=dict(metadata),
                    # so that the UI's staleness markers compare against the code that produced it
                    tags={CODE_VERSION_TAG: _CODE_VERSIONS[asset]} if asset in _CODE_VERSIONS else None,
                )
            )
    context.log.info(f"batch done: {tally.succeeded} succeeded, {tally.failed} failed of {len(call_ids)}")
    return tally


def fail_if_any_failed(tally: BatchTally, total: int) -> None:
    """Raise after every call ran, so that exactly the failed calls show as failed."""
    if tally.failures:
        summary = ", ".join(f"{code}x{count}" for code, count in sorted(tally.failures.items()))
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
