"""Deletion, reconcile after a restore, and database backups."""

from datetime import timedelta

import dagster as dg

from scryon_dagster.adapters.db.backup import PostgresToolError
from scryon_dagster.adapters.db.embedded import resolve_database_url
from scryon_dagster.assets.calls import fail_if_any_failed
from scryon_dagster.jobs.runbook.support import (
    ReprocessStage,
    process_in_batches,
    selection_of,
    utc_now,
    uuid_of,
    write_summary,
)
from scryon_dagster.partitions import CALLS_PARTITIONS
from scryon_dagster.pipeline import backups, maintenance
from scryon_dagster.resources import (
    CallDatabaseResource,
    ObjectStoreResource,
    PipelineResource,
    SettingsResource,
)


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
    call_ids = [uuid_of(value, "call id") for value in config.call_ids]
    report = maintenance.delete_calls(database.db, storage.store, call_ids)
    for call_id in report.deleted:
        if context.instance.has_dynamic_partition(CALLS_PARTITIONS, str(call_id)):
            context.instance.delete_dynamic_partition(CALLS_PARTITIONS, str(call_id))
    write_summary(context, deleted=report.deleted, unknown=report.unknown, objects_deleted=report.objects_deleted)


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
    settings: SettingsResource,
) -> None:
    configured = settings.settings
    now = utc_now()
    ttl = timedelta(hours=configured.object_storage_temp_audio_ttl_hours)
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
        write_summary(context, **summary)
        return
    maintenance.forget_missing_artifacts(database.db, report.missing_artifacts)
    batch_size = configured.scryon_sensor_batch_size
    tally = process_in_batches(
        context, pipeline, report.rederivable, selection_of(ReprocessStage.NORMALIZATION, True), batch_size
    )
    tally.add(
        process_in_batches(context, pipeline, report.reprocessable, selection_of(ReprocessStage.FULL, True), batch_size)
    )
    swept = maintenance.sweep_temp_audio(database.db, storage.store, now=now, ttl=ttl)
    # an upload writes its object before its row: fresh objects are left to the daily reaper
    reaped = maintenance.reap_orphan_artifacts(database.db, storage.store, now=now, min_age=timedelta(hours=1))
    write_summary(
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
def backup_database_op(
    context: dg.OpExecutionContext, storage: ObjectStoreResource, settings: SettingsResource
) -> None:
    configured = settings.settings
    try:
        report = backups.back_up_database(
            resolve_database_url(configured.scryon_database_url, configured.scryon_embedded_pg_dir),
            storage.store,
            now=utc_now(),
            retention=timedelta(days=configured.backup_retention_days),
        )
    except PostgresToolError as exc:
        raise dg.Failure(description=f"{exc}; no backup was stored") from None
    write_summary(
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
