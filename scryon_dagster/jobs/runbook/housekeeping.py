"""Sweeps and pruning: stale calls, temporary audio, orphan objects, bounded history."""

from datetime import timedelta

import dagster as dg

from scryon_dagster.adapters.db.api_queries import IDEMPOTENCY_KEY_TTL_HOURS
from scryon_dagster.domain.calls import ErrorCode
from scryon_dagster.jobs.runbook.support import require_positive, utc_now, write_summary
from scryon_dagster.partitions import CALLS_PARTITIONS
from scryon_dagster.pipeline import maintenance
from scryon_dagster.resources import CallDatabaseResource, ObjectStoreResource, SettingsResource


class SweepStaleCallsConfig(dg.Config):
    scheduled: bool = False
    """Set by the schedule (error code stale_job); launched by hand the code is manual_sweep."""


@dg.op(description="QUEUED/TRANSCRIBING/ANALYZING calls with no progress for the stale timeout become FAILED.")
def sweep_stale_calls_op(
    context: dg.OpExecutionContext,
    config: SweepStaleCallsConfig,
    database: CallDatabaseResource,
    settings: SettingsResource,
) -> None:
    configured = settings.settings
    report = maintenance.sweep_stale_calls(
        database.db,
        now=utc_now(),
        stale_after=timedelta(minutes=configured.scryon_stale_job_timeout_minutes),
        error_code=ErrorCode.STALE_JOB if config.scheduled else ErrorCode.MANUAL_SWEEP,
        callback_timeout=timedelta(minutes=configured.scryon_transcription_callback_timeout_minutes),
        retry_policy=configured.retry_policy,
    )
    write_summary(
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
    context: dg.OpExecutionContext,
    database: CallDatabaseResource,
    storage: ObjectStoreResource,
    settings: SettingsResource,
) -> None:
    ttl = timedelta(hours=settings.settings.object_storage_temp_audio_ttl_hours)
    report = maintenance.sweep_temp_audio(database.db, storage.store, now=utc_now(), ttl=ttl)
    write_summary(context, deleted=report.deleted, missing_objects=report.missing_objects)


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
    require_positive(config.min_age_hours, "min_age_hours")
    report = maintenance.reap_orphan_artifacts(
        database.db, storage.store, now=utc_now(), min_age=timedelta(hours=config.min_age_hours), dry_run=config.dry_run
    )
    write_summary(
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
    context: dg.OpExecutionContext,
    config: PruneHistoryConfig,
    database: CallDatabaseResource,
    settings: SettingsResource,
) -> None:
    event_retention_days = config.event_retention_days or settings.settings.scryon_event_retention_days
    for value, name in (
        (event_retention_days, "event_retention_days"),
        (config.partition_retention_days, "partition_retention_days"),
        (config.dagster_run_retention_days, "dagster_run_retention_days"),
        (config.max_runs_deleted, "max_runs_deleted"),
    ):
        require_positive(value, name)
    now = utc_now()
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
    write_summary(
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
