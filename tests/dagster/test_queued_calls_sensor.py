"""The QUEUED pickup against a real PostgreSQL and a real (test) Dagster instance."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import dagster as dg
import psycopg
import pytest

from scryon_dagster.adapters.db.records import NewCall
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.dagster_private import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from scryon_dagster.domain.calls import CallStatus
from scryon_dagster.partitions import BATCH_TAG, RETRIES_TAG, RUN_KIND_TAG, calls_partitions
from scryon_dagster.pipeline.pickup import ORPHANED_AFTER, OrphanRecovery
from scryon_dagster.resources import CallDatabaseResource, SettingsResource
from scryon_dagster.sensors.queued_calls import queued_calls_sensor, recover_orphaned_calls
from scryon_dagster.settings import load_settings


@pytest.fixture
def resources(database_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, dg.ConfigurableResource]:
    monkeypatch.setenv("SCRYON_DATABASE_URL", database_url)
    monkeypatch.setenv("SCRYON_SENSOR_BATCH_SIZE", "5")
    monkeypatch.setenv("SCRYON_QUEUED_SENSOR_WAIT_SECONDS", "0")
    config = SettingsResource()
    return {"config": config, "database": CallDatabaseResource(config=config)}


def _queue(db: CallDatabase, count: int) -> list[UUID]:
    user = db.ensure_user("sensor-user")
    ids = []
    for _ in range(count):
        call_id = uuid4()
        db.create_queued_call(
            call_id=call_id,
            user_id=user.id,
            call=NewCall(),
            temp_audio_key=f"users/{user.id}/calls/{call_id}/temp/audio-a.wav",
            temp_audio_content_type="audio/wav",
            temp_audio_size=1,
        )
        ids.append(call_id)
    return ids


def _tick(instance: dg.DagsterInstance, resources: dict[str, dg.ConfigurableResource]) -> list[dg.RunRequest]:
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        result = queued_calls_sensor(context)
    if isinstance(result, dg.SkipReason):
        return []
    assert isinstance(result, dg.SensorResult)
    return list(result.run_requests or [])


def test_a_tick_claims_a_bounded_batch_and_launches_one_ranged_run(
    db: CallDatabase, instance: dg.DagsterInstance, resources: dict[str, dg.ConfigurableResource]
) -> None:
    ids = _queue(db, 7)

    (request,) = _tick(instance, resources)

    keys = [str(call_id) for call_id in ids[:5]]
    assert request.job_name == "process_calls"
    assert request.tags[ASSET_PARTITION_RANGE_START_TAG] == keys[0]
    assert request.tags[ASSET_PARTITION_RANGE_END_TAG] == keys[-1]
    assert request.run_key == f"{request.tags[BATCH_TAG]}:new"
    assert instance.get_dynamic_partitions(calls_partitions.name) == keys

    (second,) = _tick(instance, resources)
    assert second.tags[ASSET_PARTITION_RANGE_START_TAG] == str(ids[5])
    assert second.tags[ASSET_PARTITION_RANGE_END_TAG] == str(ids[6])
    assert second.run_key != request.run_key
    assert _tick(instance, resources) == []


def test_an_idle_tick_picks_up_a_call_queued_while_it_waits(
    db: CallDatabase,
    instance: dg.DagsterInstance,
    resources: dict[str, dg.ConfigurableResource],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCRYON_QUEUED_SENSOR_WAIT_SECONDS", "5")
    queued: list[UUID] = []
    arrival = threading.Timer(0.5, lambda: queued.extend(_queue(db, 1)))
    arrival.start()
    started = time.monotonic()

    (request,) = _tick(instance, resources)

    waited = time.monotonic() - started
    arrival.join()
    assert request.tags[ASSET_PARTITION_RANGE_START_TAG] == str(queued[0])
    assert 0.4 <= waited < 5  # picked up on a poll, not at the end of the wait


def test_an_idle_tick_gives_up_after_its_wait(
    db: CallDatabase,
    instance: dg.DagsterInstance,
    resources: dict[str, dg.ConfigurableResource],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCRYON_QUEUED_SENSOR_WAIT_SECONDS", "0.6")
    started = time.monotonic()

    assert _tick(instance, resources) == []
    assert 0.3 <= time.monotonic() - started < 3


def test_a_requeued_call_runs_again_as_a_listed_batch_with_a_new_run_key(
    db: CallDatabase, instance: dg.DagsterInstance, resources: dict[str, dg.ConfigurableResource]
) -> None:
    (call_id,) = _queue(db, 1)
    (first,) = _tick(instance, resources)
    db.begin_processing([call_id], batch_id=UUID(first.tags[BATCH_TAG]))
    db.transition(call_id, CallStatus.TRANSCRIBING, CallStatus.FAILED, error_reason="transcription_timeout")
    db.transition(call_id, CallStatus.FAILED, CallStatus.QUEUED)

    (again,) = _tick(instance, resources)

    assert again.job_name == "process_listed_calls"
    assert again.run_config["ops"]["process_listed_calls_op"]["config"]["call_ids"] == [str(call_id)]
    assert again.run_key != first.run_key
    assert instance.get_dynamic_partitions(calls_partitions.name) == [str(call_id)]


def test_a_batch_mixing_new_and_requeued_calls_adds_only_the_new_keys_contiguously(
    db: CallDatabase, instance: dg.DagsterInstance, resources: dict[str, dg.ConfigurableResource]
) -> None:
    (old,) = _queue(db, 1)
    (first,) = _tick(instance, resources)
    db.begin_processing([old], batch_id=UUID(first.tags[BATCH_TAG]))
    db.transition(old, CallStatus.TRANSCRIBING, CallStatus.FAILED, error_reason="transcription_timeout")
    db.transition(old, CallStatus.FAILED, CallStatus.QUEUED)
    new = _queue(db, 2)

    ranged, listed = sorted(_tick(instance, resources), key=lambda request: request.job_name)

    assert (ranged.tags[ASSET_PARTITION_RANGE_START_TAG], ranged.tags[ASSET_PARTITION_RANGE_END_TAG]) == (
        str(new[0]),
        str(new[1]),
    )
    assert listed.run_config["ops"]["process_listed_calls_op"]["config"]["call_ids"] == [str(old)]
    assert instance.get_dynamic_partitions(calls_partitions.name) == [str(old), str(new[0]), str(new[1])]


@pytest.mark.parametrize(
    ("env", "table", "planned"),
    [
        ({}, {}, ["analysis", "normalized_transcript", "raw_transcript"]),
        ({"PYANNOTE_ENABLED": "true"}, {}, ["analysis", "normalized_transcript", "raw_transcript"]),
        (
            {"PYANNOTE_ENABLED": "true", "PYANNOTE_API_KEY": "k"},
            {},
            ["analysis", "diarization", "normalized_transcript", "raw_transcript"],
        ),
        (
            {"PYANNOTE_ENABLED": "true", "PYANNOTE_API_KEY": "k"},
            {"PYANNOTE_ENABLED": False},
            ["analysis", "normalized_transcript", "raw_transcript"],
        ),
        (
            {"PYANNOTE_API_KEY": "k"},
            {"PYANNOTE_ENABLED": True},
            ["analysis", "diarization", "normalized_transcript", "raw_transcript"],
        ),
    ],
)
def test_diarization_is_planned_only_when_it_can_happen(
    db: CallDatabase,
    instance: dg.DagsterInstance,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    table: dict[str, bool],
    planned: list[str],
) -> None:
    monkeypatch.delenv("PYANNOTE_ENABLED", raising=False)
    monkeypatch.delenv("PYANNOTE_API_KEY", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for flag, enabled in table.items():
        db.set_feature_flag(flag, enabled, updated_by="test")
    monkeypatch.setenv("SCRYON_DATABASE_URL", database_url)
    config = SettingsResource()
    resources = {"config": config, "database": CallDatabaseResource(config=config)}
    _queue(db, 1)

    (request,) = _tick(instance, resources)

    assert sorted(key.to_user_string() for key in request.asset_selection or []) == planned


def test_concurrent_ticks_never_launch_a_call_twice(
    db: CallDatabase, instance: dg.DagsterInstance, resources: dict[str, dg.ConfigurableResource]
) -> None:
    ids = _queue(db, 40)
    launched: list[str] = []
    lock = threading.Lock()

    def ticker() -> None:
        while requests := _tick(instance, resources):
            with lock:
                for request in requests:
                    batch = [call.id for call in db.calls_held_by(UUID(request.tags[BATCH_TAG]))]
                    launched.extend(str(call_id) for call_id in batch)

    threads = [threading.Thread(target=ticker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(launched) == sorted(str(call_id) for call_id in ids)


def test_a_claim_whose_run_never_started_is_released_and_picked_up_again(
    db: CallDatabase,
    instance: dg.DagsterInstance,
    resources: dict[str, dg.ConfigurableResource],
    database_url: str,
) -> None:
    (call_id,) = _queue(db, 1)
    (lost,) = _tick(instance, resources)  # the daemon "crashes": no run is ever created
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE call_records SET claimed_at = claimed_at - interval '10 minutes'")

    (retried,) = _tick(instance, resources)

    assert retried.tags[BATCH_TAG] != lost.tags[BATCH_TAG]
    assert retried.job_name == "process_listed_calls"  # attempt 2: its key already exists
    call = db.get_call(call_id)
    assert call is not None
    assert (call.status, call.attempt) == (CallStatus.QUEUED, 2)


def test_a_call_whose_runs_never_start_fails_after_its_last_pickup_instead_of_looping(
    db: CallDatabase,
    instance: dg.DagsterInstance,
    resources: dict[str, dg.ConfigurableResource],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCRYON_MAX_UNSTARTED_PICKUPS", "2")
    (call_id,) = _queue(db, 1)
    for _ in range(2):
        assert len(_tick(instance, resources)) == 1  # claimed; its run never exists
        with psycopg.connect(database_url) as conn:
            conn.execute("UPDATE call_records SET claimed_at = claimed_at - interval '10 minutes'")

    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        result = queued_calls_sensor(context)

    assert isinstance(result, dg.SkipReason)
    assert "1 calls failed (launch_failed)" in (result.skip_message or "")
    call = db.get_call(call_id)
    assert call is not None
    assert (call.status, call.error_reason) == (CallStatus.FAILED, "launch_failed")


def _live_run(instance: dg.DagsterInstance, run_id: UUID) -> None:
    instance.add_run(
        dg.DagsterRun(job_name="process_listed_calls", run_id=str(run_id), status=dg.DagsterRunStatus.STARTED)
    )


def test_calls_whose_run_died_are_requeued_for_a_retry_once_silent_and_a_live_runs_calls_are_not(
    db: CallDatabase, instance: dg.DagsterInstance, resources: dict[str, dg.ConfigurableResource]
) -> None:
    orphaned, finished, live = _queue(db, 3)
    (request,) = _tick(instance, resources)
    batch = UUID(request.tags[BATCH_TAG])
    dead_run, live_run = uuid4(), uuid4()
    db.begin_processing([orphaned, finished], batch_id=batch, run_id=dead_run)
    db.transition(finished, CallStatus.TRANSCRIBING, CallStatus.COMPLETED)
    # a relaunch of the same batch, alive, holds a call of its own (even when Dagster's view of it lags)
    db.begin_processing([live], batch_id=batch, run_id=live_run)
    _live_run(instance, live_run)
    settings = load_settings()

    not_yet = recover_orphaned_calls(instance, db, settings, datetime.now(UTC))
    later = datetime.now(UTC) + ORPHANED_AFTER + timedelta(seconds=1)
    recovered = recover_orphaned_calls(instance, db, settings, later)

    assert (not_yet.requeued, not_yet.failed) == (0, 0)  # still heartbeating, as far as anyone knows
    assert (recovered.requeued, recovered.failed) == (1, 0)
    calls = db.get_calls([orphaned, finished, live])
    assert (calls[orphaned].status, calls[orphaned].retry_count) == (CallStatus.QUEUED, 1)
    assert calls[orphaned].retry_after is not None
    assert calls[finished].status is CallStatus.COMPLETED
    assert (calls[live].status, calls[live].claim_id) == (CallStatus.TRANSCRIBING, live_run)
    # recovering again changes nothing
    assert recover_orphaned_calls(instance, db, settings, later) == OrphanRecovery(requeued=0, failed=0)


def test_a_call_whose_run_died_fails_once_it_has_used_its_retries(
    db: CallDatabase, instance: dg.DagsterInstance, resources: dict[str, dg.ConfigurableResource]
) -> None:
    (call_id,) = _queue(db, 1)
    (request,) = _tick(instance, resources)
    db.begin_processing([call_id], batch_id=UUID(request.tags[BATCH_TAG]), run_id=uuid4())

    recovery = recover_orphaned_calls(
        instance, db, load_settings(scryon_call_max_retries=0), datetime.now(UTC) + 2 * ORPHANED_AFTER
    )

    assert (recovery.requeued, recovery.failed) == (0, 1)
    call = db.get_call(call_id)
    assert call is not None
    assert (call.status, call.error_reason) == (CallStatus.FAILED, "run_crashed")


def test_a_call_waiting_for_its_retry_is_picked_up_only_when_due_and_its_run_counts_it(
    db: CallDatabase, instance: dg.DagsterInstance, resources: dict[str, dg.ConfigurableResource]
) -> None:
    due, waiting = _queue(db, 2)
    (request,) = _tick(instance, resources)
    batch = UUID(request.tags[BATCH_TAG])
    claims = {claim.call_id: claim for claim in db.begin_processing([due, waiting], batch_id=batch)}
    for call_id, delay in ((due, 0.0), (waiting, 3600.0)):
        assert db.retry_later(
            call_id,
            attempt=claims[call_id].attempt,
            error_reason="analysis_rate_limited",
            retry_count=0,
            delay_seconds=delay,
        )

    (retry_run,) = _tick(instance, resources)

    assert retry_run.tags[RUN_KIND_TAG] == "requeued"
    assert retry_run.tags[RETRIES_TAG] == "1"
    assert retry_run.run_config["ops"]["process_listed_calls_op"]["config"]["call_ids"] == [str(due)]
    waiting_call = db.get_call(waiting)
    assert waiting_call is not None
    assert (waiting_call.status, waiting_call.claim_id, waiting_call.retry_count) == (CallStatus.QUEUED, None, 1)
