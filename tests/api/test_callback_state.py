"""The callback state machine on a real PostgreSQL and the real pipeline: a delivered call resumes
only once its submitting run has let go of it, a hand-launched run resumes it from normalization,
a failed submission fails the call, and a call whose callback never comes is found by the sweep."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import dagster as dg
import psycopg
import pytest

from scryon_dagster.adapters.db.callback_queries import CallbackQueries
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.domain.calls import ArtifactType, CallStatus
from scryon_dagster.domain.provider_spend import AudioPrices
from scryon_dagster.partitions import BATCH_TAG, RUN_KIND_TAG
from scryon_dagster.pipeline.callbacks import (
    DeliveryOutcome,
    accept_transcription_callback,
    verify_callback,
)
from scryon_dagster.pipeline.outcomes import PipelineAsset, StageSelection
from scryon_dagster.pipeline.runner import CallPipeline, build_call_pipeline
from scryon_dagster.resources import CallDatabaseResource, SettingsResource
from scryon_dagster.sensors.queued_calls import queued_calls_sensor
from scryon_dagster.settings import Settings
from scryon_dagster.simulator import SimulatorServer
from tests.api.conftest import WEBHOOK_SECRET, api_settings
from tests.api.test_lemonfox_webhook import BODY, signer
from tests.fixtures.pipeline import Enqueue

EVERYTHING = StageSelection.everything()
PRICES = AudioPrices(lemonfox_per_audio_hour_usd=0.17, pyannote_per_audio_hour_usd=0.12, pyannote_min_billed_seconds=20)


def awaiting_call(db: CallDatabase, call_id: UUID, batch: UUID | None = None) -> tuple[int, UUID, dict[str, str]]:
    """Submit ``call_id`` in callback mode (attempt, batch, signed query); its run still holds it."""
    batch = batch or uuid4()
    (claim,) = db.begin_processing([call_id], batch_id=batch)
    ticket = signer().ticket(call_id)
    assert CallbackQueries(db).await_callback(call_id, attempt=claim.attempt, expires_at=ticket.expires_at)
    query = dict(pair.split("=", 1) for pair in ticket.url.split("?", 1)[1].split("&"))
    return claim.attempt, batch, query


def deliver(db: CallDatabase, store: ObjectStore, query: dict[str, str], body: bytes = BODY) -> DeliveryOutcome:
    return accept_transcription_callback(db, store, verify_callback(query, [WEBHOOK_SECRET]), body, prices=PRICES)


def test_a_delivered_call_waits_for_its_run_to_let_go(
    db: CallDatabase, store: ObjectStore, enqueue_sample: Enqueue
) -> None:
    call_id = enqueue_sample("no_names")
    attempt, batch, query = awaiting_call(db, call_id)
    callbacks = CallbackQueries(db)

    assert deliver(db, store, query) is DeliveryOutcome.ACCEPTED
    # the run is still diarizing: no resume yet, and the call is still part of the run's batch
    assert callbacks.claim_received(uuid4(), 10) == []
    assert [call.id for call in db.calls_held_by(batch)] == [call_id]

    assert callbacks.hand_off(call_id, attempt=attempt)
    assert db.calls_held_by(batch) == []  # a failure of that run no longer touches the call
    (resumed,) = callbacks.claim_received(uuid4(), 10)
    assert (resumed.call_id, resumed.attempt) == (call_id, attempt + 1)


def test_a_hand_launched_run_resumes_a_delivered_call_from_normalization(
    pipeline: CallPipeline,
    db: CallDatabase,
    store: ObjectStore,
    simulator: SimulatorServer,
    enqueue_sample: Enqueue,
) -> None:
    call_id = enqueue_sample("greeting_by_name")
    (done,) = pipeline.run_batch([call_id], EVERYTHING, batch_id=None, run_id=str(uuid4()))
    assert done.succeeded
    raw = store.get_bytes(db.get_artifacts(call_id)[ArtifactType.RAW_TRANSCRIPT_JSON].storage_key)
    db.delete_artifact(call_id, ArtifactType.NORMALIZED_TRANSCRIPT_JSON)
    attempt, _, query = awaiting_call(db, call_id)
    assert deliver(db, store, query, raw) is DeliveryOutcome.ACCEPTED
    assert CallbackQueries(db).hand_off(call_id, attempt=attempt)
    simulator.admin.reset_stats()

    # launched with every asset selected: the delivered call still only runs what remains
    (outcome,) = pipeline.run_batch([call_id], EVERYTHING, batch_id=None, run_id=str(uuid4()))

    assert outcome.succeeded, outcome.error_code
    assert set(outcome.materialized) == {
        PipelineAsset.RAW_TRANSCRIPT, PipelineAsset.NORMALIZED_TRANSCRIPT, PipelineAsset.ANALYSIS,
    }  # fmt: skip
    assert outcome.materialized[PipelineAsset.RAW_TRANSCRIPT]["delivery"] == "callback"
    assert dict(simulator.admin.stats()["requests_total"]) == {"llm": 1}
    call = db.get_call(call_id)
    assert call is not None
    assert (call.status, call.attempt) == (CallStatus.COMPLETED, attempt + 1)
    assert ArtifactType.NORMALIZED_TRANSCRIPT_JSON in db.get_artifacts(call_id)


@pytest.fixture
def callback_pipeline(pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore) -> Iterator[CallPipeline]:
    # nothing listens there: these tests never get as far as a delivery
    settings: Settings = api_settings(
        scryon_transcription_callback_enabled=True, scryon_public_base_url="http://127.0.0.1:9"
    )
    built = build_call_pipeline(settings, db, store)
    yield built
    built.close()


def test_a_refused_submission_fails_the_call(
    callback_pipeline: CallPipeline, db: CallDatabase, simulator: SimulatorServer, enqueue_sample: Enqueue
) -> None:
    call_id = enqueue_sample("no_names")
    simulator.admin.set_fault("lemonfox", "http_400", times=-1)

    (outcome,) = callback_pipeline.run_batch([call_id], EVERYTHING, batch_id=None, run_id=str(uuid4()))

    assert outcome.error_code == "transcription_4xx"
    (row,) = db.query("SELECT status, error_reason, callback_state FROM call_records WHERE id = %s", (call_id,))
    assert row == {"status": "FAILED", "error_reason": "transcription_4xx", "callback_state": None}


def test_a_submitted_call_is_handed_off_with_its_diarization_stored(
    callback_pipeline: CallPipeline, db: CallDatabase, enqueue_sample: Enqueue
) -> None:
    call_id = enqueue_sample("no_names")

    (outcome,) = callback_pipeline.run_batch([call_id], EVERYTHING, batch_id=None, run_id=str(uuid4()))

    assert outcome.succeeded
    assert set(outcome.materialized) == {PipelineAsset.DIARIZATION}
    (row,) = db.query("SELECT status, callback_state, claim_id FROM call_records WHERE id = %s", (call_id,))
    assert row == {"status": "TRANSCRIBING", "callback_state": "AWAITING", "claim_id": None}
    assert set(db.get_artifacts(call_id)) == {ArtifactType.TEMP_AUDIO, ArtifactType.DIARIZATION_JSON}
    # and nobody else may start it meanwhile
    (busy,) = callback_pipeline.run_batch([call_id], EVERYTHING, batch_id=None, run_id=str(uuid4()))
    assert busy.error_code == "call_busy"


def test_the_sweep_finds_calls_whose_callback_never_came(
    db: CallDatabase, store: ObjectStore, enqueue_sample: Enqueue, database_url: str
) -> None:
    waiting, answered = enqueue_sample("no_names"), enqueue_sample("voicemail")
    waiting_attempt, _, _ = awaiting_call(db, waiting)
    _, _, answered_query = awaiting_call(db, answered)
    deliver(db, store, answered_query)
    callbacks = CallbackQueries(db)
    now = datetime.now(UTC)

    assert callbacks.calls_awaiting_callback_since(now - timedelta(minutes=30)) == []
    (stale,) = callbacks.calls_awaiting_callback_since(now + timedelta(seconds=1))
    assert (stale.call_id, stale.attempt) == (waiting, waiting_attempt)
    assert not callbacks.fail_awaiting_callback(answered)  # its delivery won the race
    assert callbacks.fail_awaiting_callback(waiting, attempt=waiting_attempt)
    assert not callbacks.fail_awaiting_callback(waiting, attempt=waiting_attempt)
    call = db.get_call(waiting)
    assert call is not None
    assert (call.status, call.error_reason) == (CallStatus.FAILED, "callback_timeout")


def test_requeueing_by_plain_sql_ends_the_wait(db: CallDatabase, enqueue_sample: Enqueue, database_url: str) -> None:
    call_id = enqueue_sample("no_names")
    awaiting_call(db, call_id)

    # the runbook: UPDATE call_records SET status='QUEUED' WHERE status='TRANSCRIBING' AND ...
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE call_records SET status = 'QUEUED' WHERE id = %s", (call_id,))

    (row,) = db.query(
        "SELECT callback_state, callback_expires_at, claim_id FROM call_records WHERE id = %s", (call_id,)
    )
    assert row == {"callback_state": None, "callback_expires_at": None, "claim_id": None}
    assert CallbackQueries(db).calls_awaiting_callback_since(datetime.now(UTC) + timedelta(hours=1)) == []


def tick(instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    config = SettingsResource()
    resources = {"config": config, "database": CallDatabaseResource(config=config)}
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        result = queued_calls_sensor(context)
    return list(result.run_requests or []) if isinstance(result, dg.SensorResult) else []


def test_the_pickup_resumes_delivered_calls_and_gives_back_a_claim_whose_run_never_started(
    db: CallDatabase,
    store: ObjectStore,
    enqueue_sample: Enqueue,
    instance: dg.DagsterInstance,
    database_url: str,
) -> None:
    call_id = enqueue_sample("no_names")
    (first,) = tick(instance)  # the pickup claims it as a new call (its key is added)
    attempt, _, query = awaiting_call(db, call_id, batch=UUID(first.tags[BATCH_TAG]))
    deliver(db, store, query)
    CallbackQueries(db).hand_off(call_id, attempt=attempt)

    (lost,) = tick(instance)  # the daemon "crashes": that run is never created
    assert lost.run_key == f"{lost.tags[BATCH_TAG]}:resumed"
    assert lost.tags[RUN_KIND_TAG] == "callback_resume"
    assert tick(instance) == []
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE call_records SET claimed_at = claimed_at - interval '10 minutes'")
    (retried,) = tick(instance)

    assert retried.job_name == "process_listed_calls"
    assert retried.run_key != lost.run_key
    assert retried.run_config == lost.run_config
    assert retried.run_config["ops"]["process_listed_calls_op"]["config"]["call_ids"] == [str(call_id)]
