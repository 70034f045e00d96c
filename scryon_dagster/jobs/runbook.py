"""The operators' runbook as jobs launched from the UI (Launchpad config with safe defaults).

Each job validates its config before changing anything, writes a short summary (counts and ids, never
personal data) as the step's output metadata, and is safe to run twice. The work itself lives in
``pipeline/maintenance.py``; these ops translate config, run it and report.
"""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal, TypeVar
from uuid import UUID

import dagster as dg

from scryon_dagster.adapters.db.api_queries import IDEMPOTENCY_KEY_TTL_HOURS
from scryon_dagster.adapters.db.backup import PostgresToolError
from scryon_dagster.adapters.db.embedded import resolve_database_url
from scryon_dagster.assets.calls import BatchTally, fail_if_any_failed, record_calls
from scryon_dagster.domain.calls import CallStatus, ErrorCode
from scryon_dagster.domain.transcript import NORMALIZATION_VERSION
from scryon_dagster.partitions import CALLS_PARTITIONS
from scryon_dagster.pipeline import backups, maintenance
from scryon_dagster.pipeline.outcomes import PipelineAsset, StageSelection
from scryon_dagster.resources import CallDatabaseResource, ObjectStoreResource, PipelineResource, SettingsResource

# Re-processing spends provider budget: live traffic goes first in the run queue.
LOW_PRIORITY = {"dagster/priority": "-10"}
MAX_LISTED_IDS = 50
_T = TypeVar("_T")


class ReprocessStage(StrEnum):
    FULL = "full"
    NORMALIZATION = "normalization"


def _selection(stage: ReprocessStage, include_analysis: bool) -> StageSelection:
    if stage is ReprocessStage.FULL:
        assets = set(PipelineAsset)
    else:
        assets = {PipelineAsset.NORMALIZED_TRANSCRIPT, PipelineAsset.ANALYSIS}
    if not include_analysis:
        assets.discard(PipelineAsset.ANALYSIS)
    return StageSelection(frozenset(assets))


def _now() -> datetime:
    return datetime.now(UTC)


def _summary(context: dg.OpExecutionContext, **values: object) -> None:
    """The run's summary on its step: counts always, ids listed up to a bound."""
    metadata: dict[str, dg.MetadataValue] = {}
    for name, value in values.items():
        if isinstance(value, list | tuple):
            metadata[f"{name}_count"] = dg.MetadataValue.int(len(value))
            metadata[name] = dg.MetadataValue.text(", ".join(str(item) for item in value[:MAX_LISTED_IDS]))
        elif isinstance(value, bool):
            metadata[name] = dg.MetadataValue.bool(value)
        elif isinstance(value, int):
            metadata[name] = dg.MetadataValue.int(value)
        elif isinstance(value, float):
            metadata[name] = dg.MetadataValue.float(round(value, 6))
        else:
            metadata[name] = dg.MetadataValue.text(str(value))
    context.add_output_metadata(metadata)
    counts = {k: v.value for k, v in metadata.items() if not isinstance(v.value, str)}
    context.log.info(f"summary: {counts}")


def _uuid(value: str, what: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise dg.Failure(description=f"{what} {value!r} is not a UUID; nothing was changed") from None


def _positive(value: float, what: str) -> None:
    if value <= 0:
        raise dg.Failure(description=f"{what} must be positive; nothing was changed")


def _guarded(action: Callable[[], _T]) -> _T:
    """Config the maintenance layer refuses (unknown ids, bad windows) fails the run before any change."""
    try:
        return action()
    except maintenance.MaintenanceError as exc:
        raise dg.Failure(description=f"{exc}; nothing was changed") from None


def _ensure_partitions(instance: dg.DagsterInstance, call_ids: Sequence[UUID]) -> None:
    """Pruned or never-added keys come back, so per-call materializations land on a partition."""
    missing = [str(c) for c in call_ids if not instance.has_dynamic_partition(CALLS_PARTITIONS, str(c))]
    if missing:
        instance.add_dynamic_partitions(CALLS_PARTITIONS, missing)


def _process_in_batches(
    context: dg.OpExecutionContext,
    pipeline: PipelineResource,
    call_ids: Sequence[UUID],
    selection: StageSelection,
    batch_size: int,
) -> BatchTally:
    _ensure_partitions(context.instance, call_ids)
    total = BatchTally()
    for start in range(0, len(call_ids), batch_size):
        total.add(record_calls(context, pipeline, call_ids[start : start + batch_size], selection))
    return total


# --- sweeps ------------------------------------------------------------------------------------------
class SweepStaleCallsConfig(dg.Config):
    scheduled: bool = False
    """Set by the schedule (error code stale_job); launched by hand the code is manual_sweep."""


@dg.op(description="QUEUED/TRANSCRIBING/ANALYZING calls with no progress for the stale timeout become FAILED.")
def sweep_stale_calls_op(
    context: dg.OpExecutionContext, config: SweepStaleCallsConfig, database: CallDatabaseResource
) -> None:
    settings = database.config.settings
    report = maintenance.sweep_stale_calls(
        database.db,
        now=_now(),
        stale_after=timedelta(minutes=settings.scryon_stale_job_timeout_minutes),
        error_code=ErrorCode.STALE_JOB if config.scheduled else ErrorCode.MANUAL_SWEEP,
        callback_timeout=timedelta(minutes=settings.scryon_transcription_callback_timeout_minutes),
        retry_policy=settings.retry_policy,
    )
    _summary(
        context,
        failed=report.failed,
        requeued=report.requeued,
        callback_timeouts=report.callback_timeouts,
        spared_queued=report.spared_queued,
    )


@dg.job(name="sweep_stale_calls", description="The stale-job sweeper (scheduled; launch by hand any time).")
def sweep_stale_calls_job() -> None:
    sweep_stale_calls_op()


@dg.op(description="TEMP_AUDIO older than OBJECT_STORAGE_TEMP_AUDIO_TTL_HOURS: object, then row. Nothing else.")
def sweep_temp_audio_op(
    context: dg.OpExecutionContext, database: CallDatabaseResource, storage: ObjectStoreResource
) -> None:
    ttl = timedelta(hours=database.config.settings.object_storage_temp_audio_ttl_hours)
    report = maintenance.sweep_temp_audio(database.db, storage.store, now=_now(), ttl=ttl)
    _summary(context, deleted=report.deleted, missing_objects=report.missing_objects)


@dg.job(name="sweep_temp_audio", description="Deletes raw audio past its TTL (the only artifact a sweep deletes).")
def sweep_temp_audio_job() -> None:
    sweep_temp_audio_op()


class ReapOrphanArtifactsConfig(dg.Config):
    min_age_hours: float = 24
    """Objects younger than this are left alone (an upload writes its object before its row)."""
    dry_run: bool = False


@dg.op(description="Deletes objects under users/ whose call row no longer exists.")
def reap_orphan_artifacts_op(
    context: dg.OpExecutionContext,
    config: ReapOrphanArtifactsConfig,
    database: CallDatabaseResource,
    storage: ObjectStoreResource,
) -> None:
    _positive(config.min_age_hours, "min_age_hours")
    report = maintenance.reap_orphan_artifacts(
        database.db, storage.store, now=_now(), min_age=timedelta(hours=config.min_age_hours), dry_run=config.dry_run
    )
    _summary(
        context,
        calls=report.calls,
        objects_deleted=report.objects_deleted,
        bytes_deleted=report.bytes_deleted,
        dry_run=config.dry_run,
    )


@dg.job(name="reap_orphan_artifacts", description="The storage sweep after force-deletes.")
def reap_orphan_artifacts_job() -> None:
    reap_orphan_artifacts_op()


class PruneHistoryConfig(dg.Config):
    event_retention_days: int | None = None
    """Unset: SCRYON_EVENT_RETENTION_DAYS (30)."""
    partition_retention_days: int = 30
    """Partition keys of calls COMPLETED or FAILED longer ago are dropped; the call and its artifacts stay."""
    dagster_run_retention_days: int = 90
    """Dagster runs (with their event logs) older than this are deleted, oldest first."""
    max_runs_deleted: int = 1000


@dg.op(
    description=(
        "Bounded history: processing events, upload idempotency keys, old partition keys and Dagster's own old runs."
    )
)
def prune_history_op(
    context: dg.OpExecutionContext, config: PruneHistoryConfig, database: CallDatabaseResource
) -> None:
    event_retention_days = config.event_retention_days or database.config.settings.scryon_event_retention_days
    for value, name in (
        (event_retention_days, "event_retention_days"),
        (config.partition_retention_days, "partition_retention_days"),
        (config.dagster_run_retention_days, "dagster_run_retention_days"),
        (config.max_runs_deleted, "max_runs_deleted"),
    ):
        _positive(value, name)
    now = _now()
    events = maintenance.prune_events(database.db, now=now, retention=timedelta(days=event_retention_days))
    idempotency_keys = maintenance.prune_idempotency_keys(
        database.db, now=now, retention=timedelta(hours=IDEMPOTENCY_KEY_TTL_HOURS)
    )
    instance = context.instance
    old_calls = maintenance.finished_calls_before(database.db, now - timedelta(days=config.partition_retention_days))
    droppable = {str(call_id) for call_id in old_calls} & set(instance.get_dynamic_partitions(CALLS_PARTITIONS))
    for key in sorted(droppable):
        instance.delete_dynamic_partition(CALLS_PARTITIONS, key)
    old_runs = instance.get_run_records(
        filters=dg.RunsFilter(created_before=now - timedelta(days=config.dagster_run_retention_days)),
        limit=config.max_runs_deleted,
        ascending=True,
    )
    finished = [record.dagster_run.run_id for record in old_runs if record.dagster_run.is_finished]
    for run_id in finished:
        instance.delete_run(run_id)
    _summary(
        context,
        events_deleted=events,
        idempotency_keys_deleted=idempotency_keys,
        partition_keys_dropped=len(droppable),
        dagster_runs_deleted=len(finished),
    )


@dg.job(
    name="prune_history",
    description="Keeps the call events, idempotency keys, the partition key set and Dagster's log bounded.",
)
def prune_history_job() -> None:
    prune_history_op()


# --- reprocessing ------------------------------------------------------------------------------------
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
) -> None:
    call_id = _uuid(config.call_id, "call_id")
    selection = _selection(ReprocessStage(config.stage), config.include_analysis)
    plan = _guarded(
        lambda: maintenance.plan_call_reprocess(
            database.db, storage.store, call_id=call_id, selection=selection, settings=database.config.settings
        )
    )
    tally = _process_in_batches(context, pipeline, plan.call_ids, selection, batch_size=1)
    _summary(context, call_id=str(call_id), stage=config.stage, estimated_cost_usd=plan.total_usd)
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
) -> None:
    user_id = _uuid(config.user_id, "user_id")
    _positive(config.days, "days")
    selection = _selection(ReprocessStage(config.stage), config.include_analysis)
    settings = database.config.settings
    plan = _guarded(
        lambda: maintenance.plan_user_reprocess(
            database.db,
            settings,
            user_id=user_id,
            since=_now() - timedelta(days=config.days),
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
        _summary(context, **summary)
        return
    tally = _process_in_batches(
        context, pipeline, plan.call_ids, selection, batch_size=settings.scryon_sensor_batch_size
    )
    _summary(context, **summary, succeeded=tally.succeeded, failed=tally.failed)
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
) -> None:
    _positive(config.days, "days")
    call_ids = maintenance.calls_needing_renormalization(
        database.db, since=_now() - timedelta(days=config.days), version=NORMALIZATION_VERSION
    )
    if config.dry_run:
        _summary(context, calls=call_ids, normalization_version=NORMALIZATION_VERSION, dry_run=True)
        return
    selection = _selection(ReprocessStage.NORMALIZATION, config.include_analysis)
    batch_size = database.config.settings.scryon_sensor_batch_size
    tally = _process_in_batches(context, pipeline, call_ids, selection, batch_size=batch_size)
    _summary(
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


# --- deletion and restore ----------------------------------------------------------------------------
class DeleteCallsConfig(dg.Config):
    call_ids: list[str]


@dg.op(description="Deletes each call's objects, then its row (artifacts, action items, events cascade).")
def delete_calls_op(
    context: dg.OpExecutionContext,
    config: DeleteCallsConfig,
    database: CallDatabaseResource,
    storage: ObjectStoreResource,
) -> None:
    if not config.call_ids:
        raise dg.Failure(description="call_ids is empty; nothing was changed")
    call_ids = [_uuid(value, "call id") for value in config.call_ids]
    report = maintenance.delete_calls(database.db, storage.store, call_ids)
    for call_id in report.deleted:
        if context.instance.has_dynamic_partition(CALLS_PARTITIONS, str(call_id)):
            context.instance.delete_dynamic_partition(CALLS_PARTITIONS, str(call_id))
    _summary(context, deleted=report.deleted, unknown=report.unknown, objects_deleted=report.objects_deleted)


@dg.job(name="delete_call", description="Runbook: force-delete stuck or unwanted calls (objects first, then rows).")
def delete_call_job() -> None:
    delete_calls_op()


class ReconcileStorageConfig(dg.Config):
    repair: bool = False
    """Off: report only. On: drop rows of lost objects, re-derive what is derivable, sweep the rest."""


@dg.op(description="After a restore: rows without objects, objects without rows, audio past its TTL.")
def reconcile_storage_op(
    context: dg.OpExecutionContext,
    config: ReconcileStorageConfig,
    database: CallDatabaseResource,
    storage: ObjectStoreResource,
    pipeline: PipelineResource,
) -> None:
    settings = database.config.settings
    now = _now()
    ttl = timedelta(hours=settings.object_storage_temp_audio_ttl_hours)
    report = maintenance.reconcile_storage(database.db, storage.store, now=now, ttl=ttl)
    summary: dict[str, object] = {
        "missing_artifacts": [f"{call_id}:{artifact.value}" for call_id, artifact in report.missing_artifacts],
        "orphan_objects": report.orphan_objects,
        "untracked_objects": report.untracked_objects,
        "expired_temp_audio": report.expired_temp_audio,
        "rederivable": report.rederivable,
        "reprocessable": report.reprocessable,
        "underivable": report.underivable,
        "repair": config.repair,
    }
    if not config.repair:
        _summary(context, **summary)
        return
    maintenance.forget_missing_artifacts(database.db, report.missing_artifacts)
    batch_size = settings.scryon_sensor_batch_size
    tally = _process_in_batches(
        context, pipeline, report.rederivable, _selection(ReprocessStage.NORMALIZATION, True), batch_size
    )
    tally.add(
        _process_in_batches(context, pipeline, report.reprocessable, _selection(ReprocessStage.FULL, True), batch_size)
    )
    swept = maintenance.sweep_temp_audio(database.db, storage.store, now=now, ttl=ttl)
    # an upload writes its object before its row: fresh objects are left to the daily reaper
    reaped = maintenance.reap_orphan_artifacts(database.db, storage.store, now=now, min_age=timedelta(hours=1))
    _summary(
        context,
        **summary,
        repaired=tally.succeeded,
        repair_failed=tally.failed,
        temp_audio_deleted=len(swept.deleted),
        orphan_objects_deleted=reaped.objects_deleted,
    )
    fail_if_any_failed(tally, len(report.rederivable) + len(report.reprocessable))


@dg.job(name="reconcile_storage", description="Runbook: restore from snapshot — reconcile the database and storage.")
def reconcile_storage_job() -> None:
    reconcile_storage_op()


# --- database backups ---------------------------------------------------------------------------------
@dg.op(description="pg_dump of the call database, gzipped, streamed to db-backups/; old dumps pruned.")
def backup_database_op(context: dg.OpExecutionContext, config: SettingsResource, storage: ObjectStoreResource) -> None:
    settings = config.settings
    try:
        report = backups.back_up_database(
            resolve_database_url(settings.scryon_database_url, settings.scryon_embedded_pg_dir),
            storage.store,
            now=_now(),
            retention=timedelta(days=settings.backup_retention_days),
        )
    except PostgresToolError as exc:
        raise dg.Failure(description=f"{exc}; no backup was stored") from None
    _summary(
        context,
        object_key=report.key,
        compressed_bytes=report.compressed_bytes,
        dump_bytes=report.dump_bytes,
        duration_seconds=report.duration_seconds,
        server_version=report.server_version,
        pg_dump_version=report.pg_dump_version,
        pruned=report.pruned,
    )


@dg.job(
    name="backup_database",
    description="Runbook: back up the call database (nightly; launch by hand before a risky change).",
)
def backup_database_job() -> None:
    backup_database_op()


RUNBOOK_JOBS = [
    sweep_stale_calls_job,
    sweep_temp_audio_job,
    reap_orphan_artifacts_job,
    prune_history_job,
    reprocess_call_job,
    reprocess_user_calls_job,
    backfill_normalization_job,
    delete_call_job,
    reconcile_storage_job,
    backup_database_job,
]
