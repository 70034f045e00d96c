"""The per-call assets: one subsettable multi-asset that carries each call of a batch through the
selected stages and records a materialization per (asset, call) as each call finishes."""

from collections import Counter
from collections.abc import Iterator, Sequence
from uuid import UUID

import dagster as dg

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


def materialize_calls(
    context: dg.OpExecutionContext,
    pipeline: PipelineResource,
    call_keys: Sequence[str],
    selection: StageSelection,
) -> None:
    """Run the calls, log one materialization per (asset, succeeded call), then fail if any failed."""
    call_ids = [_call_id(key) for key in call_keys]
    batch_tag = context.run.tags.get(BATCH_TAG)
    batch_id = UUID(batch_tag) if batch_tag else None
    failures: Counter[str] = Counter()
    succeeded = 0
    for outcome in pipeline.run_batch(call_ids, selection, batch_id=batch_id, run_id=context.run_id):
        if not outcome.succeeded:
            failures[outcome.error_code or "unknown"] += 1
            continue
        succeeded += 1
        for asset, metadata in outcome.materialized.items():
            context.log_event(
                dg.AssetMaterialization(asset_key=asset.value, partition=str(outcome.call_id), metadata=dict(metadata))
            )
    context.log.info(f"batch done: {succeeded} succeeded, {sum(failures.values())} failed of {len(call_ids)}")
    if failures:
        summary = ", ".join(f"{code}x{count}" for code, count in sorted(failures.items()))
        raise CallBatchFailure(
            description=f"{sum(failures.values())} of {len(call_ids)} calls failed ({summary})",
            metadata={"failed": sum(failures.values()), "succeeded": succeeded, "error_codes": summary},
        )


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
