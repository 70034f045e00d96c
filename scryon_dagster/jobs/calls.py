"""Jobs that run the per-call pipeline: ranged batches of new calls, listed batches of re-queued
calls, and re-derivation of normalization + analysis from stored raw artifacts."""

import dagster as dg

from scryon_dagster.assets.calls import call_pipeline, fail_if_any_failed, materialize_calls
from scryon_dagster.executors import batch_executor
from scryon_dagster.pipeline.outcomes import PipelineAsset, StageSelection
from scryon_dagster.resources import PipelineResource
from scryon_dagster.settings import load_settings

PROCESS_CALLS_JOB = "process_calls"
PROCESS_LISTED_CALLS_JOB = "process_listed_calls"
# in the run worker, or on a Celery worker of another host (SCRYON_BATCH_EXECUTOR)
BATCH_EXECUTOR = batch_executor(load_settings())

process_calls_job = dg.define_asset_job(
    name=PROCESS_CALLS_JOB,
    selection=dg.AssetSelection.assets(call_pipeline).without_checks(),
    executor_def=BATCH_EXECUTOR,
    description="Every stage for a contiguous range of newly queued calls (launched by the QUEUED sensor).",
)

rederive_transcripts_job = dg.define_asset_job(
    name="rederive_transcripts",
    selection=dg.AssetSelection.assets(
        PipelineAsset.NORMALIZED_TRANSCRIPT.value, PipelineAsset.ANALYSIS.value
    ).without_checks(),
    executor_def=dg.in_process_executor,
    description=(
        "Normalized transcript, naming and analysis again from the stored raw transcript and diarization: "
        "no transcription or diarization provider call."
    ),
)


class ListedCallsConfig(dg.Config):
    call_ids: list[str]
    assets: list[str] = [asset.value for asset in PipelineAsset]


@dg.op(description="Runs the pipeline for the listed calls and records per-call materializations.")
def process_listed_calls_op(
    context: dg.OpExecutionContext, config: ListedCallsConfig, pipeline: PipelineResource
) -> None:
    try:
        selection = StageSelection.of(config.assets)
    except ValueError:
        raise dg.Failure(description=f"assets must be among {[a.value for a in PipelineAsset]}") from None
    fail_if_any_failed(materialize_calls(context, pipeline, config.call_ids, selection), len(config.call_ids))


@dg.job(
    name=PROCESS_LISTED_CALLS_JOB,
    executor_def=BATCH_EXECUTOR,
    description="The pipeline for a list of calls whose partitions already exist (re-queued calls).",
)
def process_listed_calls_job() -> None:
    process_listed_calls_op()


check_stored_artifacts_job = dg.define_asset_job(
    name="check_stored_artifacts",
    selection=dg.AssetSelection.checks_for_assets(call_pipeline),
    description="Parses the most recent stored artifacts of every call asset.",
)
