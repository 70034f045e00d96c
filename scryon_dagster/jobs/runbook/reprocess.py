"""Reprocessing: one call, a user's recent calls (dry run first), the normalization backfill."""

from datetime import timedelta
from typing import Literal

import dagster as dg

from scryon_dagster.assets.calls import fail_if_any_failed
from scryon_dagster.domain.calls import CallStatus
from scryon_dagster.domain.transcript import NORMALIZATION_VERSION
from scryon_dagster.jobs.runbook.support import (
    LOW_PRIORITY,
    ReprocessStage,
    guarded,
    process_in_batches,
    require_positive,
    selection_of,
    utc_now,
    uuid_of,
    write_summary,
)
from scryon_dagster.pipeline import maintenance
from scryon_dagster.resources import CallDatabaseResource, ObjectStoreResource, PipelineResource, SettingsResource


class ReprocessCallConfig(dg.Config):
    call_id: str
    stage: Literal["full", "normalization"] = "full"
    """full: every stage (needs TEMP_AUDIO); normalization: re-derive from stored raw outputs."""
    include_analysis: bool = True


@dg.op(description="Reprocesses one call from the chosen stage.")
def reprocess_call_op(
    context: dg.OpExecutionContext,
    config: ReprocessCallConfig,
    database: CallDatabaseResource,
    storage: ObjectStoreResource,
    pipeline: PipelineResource,
    settings: SettingsResource,
) -> None:
    call_id = uuid_of(config.call_id, "call_id")
    selection = selection_of(ReprocessStage(config.stage), config.include_analysis)
    plan = guarded(
        lambda: maintenance.plan_call_reprocess(
            database.db, storage.store, call_id=call_id, selection=selection, settings=settings.settings
        )
    )
    tally = process_in_batches(context, pipeline, plan.call_ids, selection, batch_size=1)
    write_summary(context, call_id=str(call_id), stage=config.stage, estimated_cost_usd=plan.total_usd)
    fail_if_any_failed(tally, len(plan.call_ids))


@dg.job(name="reprocess_call", tags=LOW_PRIORITY, description="Runbook: reprocess a single call.")
def reprocess_call_job() -> None:
    reprocess_call_op()


class ReprocessUserCallsConfig(dg.Config):
    user_id: str
    days: int = 7
    statuses: list[str] = [CallStatus.COMPLETED.value]
    """COMPLETED and/or FAILED."""
    stage: Literal["full", "normalization"] = "full"
    include_analysis: bool = True
    dry_run: bool = True
    """The default only reports the count and the estimated provider cost."""


@dg.op(description="Reprocesses a user's recent calls in batches; a dry run only reports count and cost.")
def reprocess_user_calls_op(
    context: dg.OpExecutionContext,
    config: ReprocessUserCallsConfig,
    database: CallDatabaseResource,
    storage: ObjectStoreResource,
    pipeline: PipelineResource,
    settings: SettingsResource,
) -> None:
    user_id = uuid_of(config.user_id, "user_id")
    require_positive(config.days, "days")
    selection = selection_of(ReprocessStage(config.stage), config.include_analysis)
    configured = settings.settings
    plan = guarded(
        lambda: maintenance.plan_user_reprocess(
            database.db,
            configured,
            user_id=user_id,
            since=utc_now() - timedelta(days=config.days),
            statuses=config.statuses,
            selection=selection,
            store=storage.store,
        )
    )
    summary: dict[str, object] = {
        "calls": plan.call_ids,
        "stages": ", ".join(selection.names),
        "audio_minutes": round(plan.audio_seconds / 60, 1),
        "calls_missing_audio": plan.calls_missing_audio,
        "calls_missing_artifacts": plan.calls_missing_artifacts,
        "estimated_transcription_usd": plan.transcription_usd,
        "estimated_diarization_usd": plan.diarization_usd,
        "estimated_llm_usd": plan.llm_usd,
        "estimated_total_usd": plan.total_usd,
        "dry_run": config.dry_run,
    }
    if config.dry_run:
        write_summary(context, **summary)
        return
    tally = process_in_batches(
        context, pipeline, plan.call_ids, selection, batch_size=configured.scryon_sensor_batch_size
    )
    write_summary(context, **summary, succeeded=tally.succeeded, failed=tally.failed)
    fail_if_any_failed(tally, len(plan.call_ids))


@dg.job(
    name="reprocess_user_calls",
    tags=LOW_PRIORITY,
    description="Runbook: reprocess a user's calls of the last N days. Re-spends provider budget: dry run first.",
)
def reprocess_user_calls_job() -> None:
    reprocess_user_calls_op()


class BackfillNormalizationConfig(dg.Config):
    days: int = 7
    include_analysis: bool = True
    dry_run: bool = False


@dg.op(description="Re-derives the calls whose stored normalized transcript is older than NORMALIZATION_VERSION.")
def backfill_normalization_op(
    context: dg.OpExecutionContext,
    config: BackfillNormalizationConfig,
    database: CallDatabaseResource,
    pipeline: PipelineResource,
    settings: SettingsResource,
) -> None:
    require_positive(config.days, "days")
    call_ids = maintenance.calls_needing_renormalization(
        database.db, since=utc_now() - timedelta(days=config.days), version=NORMALIZATION_VERSION
    )
    if config.dry_run:
        write_summary(context, calls=call_ids, normalization_version=NORMALIZATION_VERSION, dry_run=True)
        return
    selection = selection_of(ReprocessStage.NORMALIZATION, config.include_analysis)
    batch_size = settings.settings.scryon_sensor_batch_size
    tally = process_in_batches(context, pipeline, call_ids, selection, batch_size=batch_size)
    write_summary(
        context,
        calls=call_ids,
        normalization_version=NORMALIZATION_VERSION,
        succeeded=tally.succeeded,
        failed=tally.failed,
    )
    fail_if_any_failed(tally, len(call_ids))


@dg.job(
    name="backfill_normalization",
    tags=LOW_PRIORITY,
    description="After a NORMALIZATION_VERSION bump: no transcription or diarization re-spend.",
)
def backfill_normalization_job() -> None:
    backfill_normalization_op()
