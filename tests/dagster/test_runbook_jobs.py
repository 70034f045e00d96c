"""The runbook jobs as an operator launches them (real PostgreSQL, S3 server, simulator, ffmpeg)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import dagster as dg
import psycopg

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.definitions import defs
from scryon_dagster.domain.calls import ArtifactType, CallStatus
from scryon_dagster.domain.transcript import NORMALIZATION_VERSION
from scryon_dagster.simulator import SimulatorServer
from tests.fixtures.pipeline import Enqueue


def launch(instance: dg.DagsterInstance, job: str, config: dict[str, Any] | None = None) -> dg.ExecuteInProcessResult:
    op = defs.resolve_job_def(job).nodes_in_topological_order[0].name
    run_config = {"ops": {op: {"config": config}}} if config is not None else {}
    return defs.resolve_job_def(job).execute_in_process(instance=instance, run_config=run_config, raise_on_error=False)


def summary(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    (materialization,) = [event for event in result.all_node_events if event.event_type_value == "STEP_OUTPUT"]
    return {key: value.value for key, value in materialization.step_output_data.metadata.items()}


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    (failure,) = [event for event in result.all_node_events if event.is_step_failure]
    return str(failure.step_failure_data.user_failure_data or failure.step_failure_data.error)


def processed(
    db: CallDatabase, pipeline_instance: dg.DagsterInstance, enqueue: Enqueue, slug: str = "no_names"
) -> UUID:
    """A call that went through the whole pipeline once."""
    call_id = enqueue(slug)
    result = launch(pipeline_instance, "reprocess_call", {"call_id": str(call_id)})
    assert result.success
    call = db.get_call(call_id)
    assert call is not None
    assert call.status is CallStatus.COMPLETED
    return call_id


def test_reprocess_call_refuses_bad_ids_and_missing_audio_without_changing_anything(
    pipeline_env: dict[str, str],
    db: CallDatabase,
    store: ObjectStore,
    enqueue_sample: Enqueue,
    instance: dg.DagsterInstance,
) -> None:
    assert "not a UUID" in failure_message(launch(instance, "reprocess_call", {"call_id": "nope"}))
    assert not launch(instance, "reprocess_call", {"call_id": str(uuid4())}).success

    call_id = enqueue_sample("no_names")
    store.delete(db.get_artifacts(call_id)[ArtifactType.TEMP_AUDIO].storage_key)
    before = db.get_call(call_id)
    result = launch(instance, "reprocess_call", {"call_id": str(call_id)})

    assert not result.success
    assert "audio_missing" in failure_message(result)
    assert db.get_call(call_id) == before


def test_reprocess_call_from_normalization_spends_no_audio_provider(
    pipeline_env: dict[str, str],
    db: CallDatabase,
    simulator: SimulatorServer,
    enqueue_sample: Enqueue,
    instance: dg.DagsterInstance,
) -> None:
    call_id = processed(db, instance, enqueue_sample)
    simulator.admin.reset_stats()

    result = launch(instance, "reprocess_call", {"call_id": str(call_id), "stage": "normalization"})

    assert result.success
    assert simulator.admin.stats()["requests_total"] == {"llm": 1}
    call = db.get_call(call_id)
    assert call is not None
    assert (call.status, call.attempt) == (CallStatus.COMPLETED, 2)


def test_reprocess_user_calls_dry_run_changes_nothing_then_runs(
    pipeline_env: dict[str, str], db: CallDatabase, enqueue_sample: Enqueue, instance: dg.DagsterInstance
) -> None:
    call_id = processed(db, instance, enqueue_sample)
    user_id = db.get_call(call_id).user_id  # type: ignore[union-attr]
    before = db.get_call(call_id)

    dry = launch(instance, "reprocess_user_calls", {"user_id": str(user_id)})

    assert dry.success
    report = summary(dry)
    assert report["calls_count"] == 1
    assert report["estimated_total_usd"] > 0
    assert db.get_call(call_id) == before

    real = launch(instance, "reprocess_user_calls", {"user_id": str(user_id), "dry_run": False})
    assert real.success
    after = db.get_call(call_id)
    assert after is not None
    assert (after.status, after.attempt) == (CallStatus.COMPLETED, 2)

    assert not launch(instance, "reprocess_user_calls", {"user_id": str(uuid4())}).success
    assert not launch(instance, "reprocess_user_calls", {"user_id": str(user_id), "days": -1}).success


def test_delete_call_reports_unknown_ids_and_is_safe_twice(
    pipeline_env: dict[str, str],
    db: CallDatabase,
    store: ObjectStore,
    enqueue_sample: Enqueue,
    instance: dg.DagsterInstance,
) -> None:
    call_id = processed(db, instance, enqueue_sample)
    stranger = uuid4()

    first = launch(instance, "delete_call", {"call_ids": [str(call_id), str(stranger)]})
    second = launch(instance, "delete_call", {"call_ids": [str(call_id)]})

    assert first.success
    assert second.success
    assert summary(first)["deleted_count"] == 1
    assert summary(first)["unknown"] == str(stranger)
    assert summary(second)["deleted_count"] == 0
    assert db.get_call(call_id) is None
    assert list(store.list_objects("users/")) == [] or all(
        str(call_id) not in o.key for o in store.list_objects("users/")
    )


def test_sweep_by_hand_uses_manual_sweep(
    pipeline_env: dict[str, str],
    db: CallDatabase,
    enqueue_sample: Enqueue,
    instance: dg.DagsterInstance,
    database_url: str,
) -> None:

    call_id = enqueue_sample("no_names")
    with psycopg.connect(database_url) as conn:
        conn.execute("ALTER TABLE call_records DISABLE TRIGGER call_records_touch")
        conn.execute(
            "UPDATE call_records SET updated_at = now() - interval '2 hours', status = 'TRANSCRIBING' WHERE id = %s",
            (call_id,),
        )
        conn.execute("ALTER TABLE call_records ENABLE TRIGGER call_records_touch")

    result = launch(instance, "sweep_stale_calls", {})

    assert result.success
    call = db.get_call(call_id)
    assert call is not None
    assert (call.status, call.error_reason) == (CallStatus.FAILED, "manual_sweep")
    assert summary(result)["failed_count"] == 1


def test_backfill_normalization_rederives_only_older_versions(
    pipeline_env: dict[str, str],
    db: CallDatabase,
    enqueue_sample: Enqueue,
    instance: dg.DagsterInstance,
    database_url: str,
) -> None:
    old = processed(db, instance, enqueue_sample, "no_names")
    current = processed(db, instance, enqueue_sample, "greeting_by_name")
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE call_artifacts SET schema_version = %s "
            "WHERE call_id = %s AND artifact_type = 'NORMALIZED_TRANSCRIPT_JSON'",
            (NORMALIZATION_VERSION - 1, old),
        )

    result = launch(instance, "backfill_normalization", {})

    assert result.success
    assert summary(result)["calls"] == str(old)
    assert db.get_artifacts(old)[ArtifactType.NORMALIZED_TRANSCRIPT_JSON].schema_version == NORMALIZATION_VERSION
    assert db.get_call(current).attempt == 1  # type: ignore[union-attr]


def test_reconcile_storage_reports_then_repairs_a_lost_transcript(
    pipeline_env: dict[str, str],
    db: CallDatabase,
    store: ObjectStore,
    enqueue_sample: Enqueue,
    instance: dg.DagsterInstance,
) -> None:
    call_id = processed(db, instance, enqueue_sample)
    store.delete(db.get_artifacts(call_id)[ArtifactType.NORMALIZED_TRANSCRIPT_JSON].storage_key)

    report = launch(instance, "reconcile_storage", {})
    assert report.success
    assert summary(report)["rederivable"] == str(call_id)
    assert not store.exists(db.get_artifacts(call_id)[ArtifactType.NORMALIZED_TRANSCRIPT_JSON].storage_key)

    repair = launch(instance, "reconcile_storage", {"repair": True})
    assert repair.success
    assert store.exists(db.get_artifacts(call_id)[ArtifactType.NORMALIZED_TRANSCRIPT_JSON].storage_key)
    assert summary(launch(instance, "reconcile_storage", {}))["rederivable_count"] == 0


def test_set_feature_flag_and_housekeeping_jobs_run(
    pipeline_env: dict[str, str], db: CallDatabase, instance: dg.DagsterInstance
) -> None:
    assert launch(instance, "set_feature_flag", {"flag": "PYANNOTE_ENABLED", "enabled": False}).success
    assert db.get_feature_flags() == {"PYANNOTE_ENABLED": False}
    for job in ("sweep_temp_audio", "prune_history", "reap_orphan_artifacts"):
        assert launch(instance, job, {} if job != "sweep_temp_audio" else None).success, job
