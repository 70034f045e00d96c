"""Faults that are nobody's fault: a lost database connection, a transient provider failure, expired
audio, a relaunched batch. No call may fail, be lost, or be paid for twice because of them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from uuid import UUID, uuid4

import psycopg
import pytest

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore, build_object_store
from scryon_dagster.domain.calls import ArtifactType, CallStatus, ErrorCode
from scryon_dagster.pipeline.outcomes import PipelineAsset
from scryon_dagster.pipeline.runner import CallPipeline, build_call_pipeline
from scryon_dagster.settings import load_settings
from scryon_dagster.simulator import SimulatorServer
from tests.fixtures.pipeline import Enqueue
from tests.fixtures.s3 import RestartableS3Server
from tests.pipeline.test_call_pipeline import EVERYTHING, REDERIVE, provider_requests, run, status


@pytest.fixture
def retrying_pipeline(
    monkeypatch: pytest.MonkeyPatch, pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore
) -> Iterator[CallPipeline]:
    """Two automatic retries, due at once (the backoff itself is the policy's unit test)."""
    monkeypatch.setenv("SCRYON_CALL_MAX_RETRIES", "2")
    monkeypatch.setenv("SCRYON_CALL_RETRY_BASE_SECONDS", "0")
    built = build_call_pipeline(load_settings(), db, store)
    yield built
    built.close()


def test_a_transient_failure_requeues_the_call_and_the_retry_pays_only_for_what_failed(
    retrying_pipeline: CallPipeline, db: CallDatabase, simulator: SimulatorServer, enqueue_sample: Enqueue
) -> None:
    call_id = enqueue_sample("no_names")
    simulator.admin.set_fault("llm", "http_503", times=2)  # both tries of the client's own retry

    first = run(retrying_pipeline, [call_id])[call_id]

    assert (first.retry_of, first.error_code) == (ErrorCode.ANALYSIS_UNAVAILABLE, None)
    call = db.get_call(call_id)
    assert call is not None
    assert (call.status, call.retry_count, call.claim_id) == (CallStatus.QUEUED, 1, None)
    retry_events = [e for e in db.list_events(call_id) if e.error_message and "retry 1" in e.error_message]
    assert [e.error_code for e in retry_events] == [ErrorCode.ANALYSIS_UNAVAILABLE]
    spent = provider_requests(simulator)

    second = run(retrying_pipeline, [call_id])[call_id]

    assert second.succeeded, second
    assert status(db, call_id) == (CallStatus.COMPLETED, None)
    after = provider_requests(simulator)
    assert after["lemonfox"] == spent["lemonfox"]  # the stored transcript was reused
    assert after.get("pyannote", 0) == spent.get("pyannote", 0)
    assert after["llm"] == spent["llm"] + 1
    assert second.materialized[PipelineAsset.RAW_TRANSCRIPT] == {"reused": True}
    assert second.materialized[PipelineAsset.ANALYSIS].get("reused") is None


def test_a_permanent_failure_fails_at_once_whatever_the_retries(
    retrying_pipeline: CallPipeline, db: CallDatabase, simulator: SimulatorServer, enqueue_sample: Enqueue
) -> None:
    call_id = enqueue_sample("no_names")
    simulator.admin.set_fault("llm", "http_400", times=-1)

    outcome = run(retrying_pipeline, [call_id])[call_id]

    assert outcome.error_code == ErrorCode.ANALYSIS_4XX
    assert status(db, call_id) == (CallStatus.FAILED, ErrorCode.ANALYSIS_4XX)


def test_a_call_fails_with_its_code_once_its_retries_are_used(
    retrying_pipeline: CallPipeline, db: CallDatabase, simulator: SimulatorServer, enqueue_sample: Enqueue
) -> None:
    call_id = enqueue_sample("no_names")
    simulator.admin.set_fault("lemonfox", "http_500", times=-1)

    codes = [run(retrying_pipeline, [call_id])[call_id] for _ in range(3)]

    assert [outcome.retry_of for outcome in codes[:2]] == [ErrorCode.TRANSCRIPTION_UNAVAILABLE] * 2
    assert codes[2].error_code == ErrorCode.TRANSCRIPTION_UNAVAILABLE
    assert status(db, call_id) == (CallStatus.FAILED, ErrorCode.TRANSCRIPTION_UNAVAILABLE)


def test_a_requeued_call_whose_audio_expired_is_rederived_from_its_stored_transcript(
    pipeline: CallPipeline, db: CallDatabase, store: ObjectStore, simulator: SimulatorServer, enqueue_sample: Enqueue
) -> None:
    call_id = enqueue_sample("no_names")
    assert run(pipeline, [call_id])[call_id].succeeded
    store.delete(db.get_artifacts(call_id)[ArtifactType.TEMP_AUDIO].storage_key)
    assert db.transition(call_id, CallStatus.COMPLETED, CallStatus.QUEUED)  # the runbook's re-queue
    spent = provider_requests(simulator)

    outcome = run(pipeline, [call_id])[call_id]

    assert outcome.succeeded, outcome
    assert status(db, call_id) == (CallStatus.COMPLETED, None)
    assert provider_requests(simulator)["lemonfox"] == spent["lemonfox"]
    assert any(e.error_message == "audio_expired_stored_transcript_used" for e in db.list_events(call_id))


def test_a_relaunched_batch_never_takes_a_completed_call_again(
    pipeline: CallPipeline, db: CallDatabase, simulator: SimulatorServer, enqueue_sample: Enqueue
) -> None:
    call_id = enqueue_sample("no_names")
    assert run(pipeline, [call_id])[call_id].succeeded
    spent = provider_requests(simulator)

    (outcome,) = pipeline.run_batch([call_id], EVERYTHING, batch_id=uuid4(), run_id=str(uuid4()), take_idle=False)

    assert (outcome.left_alone, outcome.error_code) == ("completed_not_taken", None)
    assert status(db, call_id) == (CallStatus.COMPLETED, None)
    assert provider_requests(simulator) == spent


def _terminate_backends(database_url: str, stop: threading.Event) -> int:
    """Kill every other connection to the test database three times, a second apart, as server restarts
    would (the pool's connections, the ones being opened, and those in the middle of a statement)."""
    kills = 0
    for _ in range(3):
        if stop.wait(1.0):
            break
        with psycopg.connect(database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
            kills += len(rows)
    return kills


def test_lost_database_connections_fail_no_call_and_every_outcome_is_reported(
    pipeline: CallPipeline, db: CallDatabase, simulator: SimulatorServer, enqueue_sample: Enqueue, database_url: str
) -> None:
    call_ids = [enqueue_sample(slug) for slug in ("no_names", "greeting_by_name", "self_introduction") * 2]
    simulator.admin.set_latency("llm", 2.0)  # keeps the batch in flight while its connections die
    stop = threading.Event()
    kills: list[int] = []
    killer = threading.Thread(target=lambda: kills.append(_terminate_backends(database_url, stop)))
    killer.start()
    try:
        started = time.monotonic()
        outcomes = run(pipeline, call_ids)
    finally:
        stop.set()
        killer.join()

    assert kills, "the killer did not finish"
    assert kills[0] > 0, "no connection was killed while the batch ran"
    assert set(outcomes) == set(call_ids)
    assert [o for o in outcomes.values() if not o.succeeded] == []
    assert {status(db, call_id) for call_id in call_ids} == {(CallStatus.COMPLETED, None)}
    assert time.monotonic() - started < 60
    # the stage trail of every call reached the database despite the lost connections
    for call_id in call_ids:
        stages = {event.stage for event in db.list_events(call_id)}
        assert {"TRANSCRIBED", "ANALYZED"} <= stages


def _call_ids_held_by(db: CallDatabase, holder: UUID) -> set[UUID]:
    return {call.id for call in db.calls_held_by(holder)}


def test_a_run_holds_the_calls_it_takes(pipeline: CallPipeline, db: CallDatabase, enqueue_sample: Enqueue) -> None:
    call_id = enqueue_sample("no_names")
    run_id = uuid4()

    (outcome,) = pipeline.run_batch([call_id], EVERYTHING, batch_id=uuid4(), run_id=str(run_id))

    assert outcome.succeeded
    assert _call_ids_held_by(db, run_id) == {call_id}


def test_a_retry_after_the_analysis_was_stored_pays_no_llm_and_writes_the_action_items_again(
    retrying_pipeline: CallPipeline,
    db: CallDatabase,
    simulator: SimulatorServer,
    enqueue_sample: Enqueue,
    database_url: str,
) -> None:
    call_id = enqueue_sample("greeting_by_name")
    assert run(retrying_pipeline, [call_id])[call_id].succeeded
    items = db.list_action_items(call_id)
    assert items
    # as if the run died after storing the analysis, before the action items and COMPLETED
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE call_records SET status = 'ANALYZING' WHERE id = %s", (call_id,))
        conn.execute("UPDATE call_records SET cycle_started_at = created_at WHERE id = %s", (call_id,))
        conn.execute("DELETE FROM action_items WHERE call_record_id = %s", (call_id,))
    call = db.get_call(call_id)
    assert call is not None
    assert db.retry_later(call_id, attempt=call.attempt, error_reason="run_crashed", retry_count=0, delay_seconds=0)
    spent = provider_requests(simulator)

    outcome = run(retrying_pipeline, [call_id])[call_id]

    assert outcome.succeeded, outcome
    assert outcome.materialized[PipelineAsset.ANALYSIS]["reused"] is True
    assert provider_requests(simulator) == spent  # no transcription, diarization or LLM request
    assert status(db, call_id) == (CallStatus.COMPLETED, None)
    assert sorted(db.list_action_items(call_id), key=str) == sorted(items, key=str)


def test_an_object_storage_outage_fails_no_call(
    monkeypatch: pytest.MonkeyPatch,
    pipeline_env: dict[str, str],
    db: CallDatabase,
    simulator: SimulatorServer,
    enqueue_sample: Enqueue,
    outage_server: RestartableS3Server,
) -> None:
    """The S3 server goes away for 4 s while a batch reads recordings and stores outputs."""
    call_ids = [enqueue_sample(slug) for slug in ("no_names", "greeting_by_name", "self_introduction", "voicemail")]
    monkeypatch.setenv("OBJECT_STORAGE_ENDPOINT", outage_server.url)  # same buckets, a server that can stop
    settings = load_settings()
    outage_pipeline = build_call_pipeline(settings, db, build_object_store(settings))
    simulator.admin.set_latency("lemonfox", 1.0)
    outage = threading.Timer(0.5, outage_server.stop)
    outage.start()
    restart = threading.Timer(4.5, outage_server.start)
    restart.start()
    try:
        outcomes = run(outage_pipeline, call_ids)
    finally:
        outage.join()
        restart.join()
        outage_pipeline.close()

    assert [o for o in outcomes.values() if not o.succeeded] == []
    assert {status(db, call_id) for call_id in call_ids} == {(CallStatus.COMPLETED, None)}


def test_a_retried_rederivation_never_pays_for_the_audio_again(
    retrying_pipeline: CallPipeline, db: CallDatabase, simulator: SimulatorServer, enqueue_sample: Enqueue
) -> None:
    call_id = enqueue_sample("no_names")
    assert run(retrying_pipeline, [call_id])[call_id].succeeded
    simulator.admin.set_fault("llm", "http_503", times=2)
    spent = provider_requests(simulator)

    # re-derivation launched by hand; its analysis fails transiently and goes back to the queue
    first = run(retrying_pipeline, [call_id], REDERIVE)[call_id]
    # the pickup plans every asset for the retry, as it does for any re-queued call
    retried = run(retrying_pipeline, [call_id], EVERYTHING)[call_id]

    assert first.retry_of == ErrorCode.ANALYSIS_UNAVAILABLE
    assert retried.succeeded, retried
    after = provider_requests(simulator)
    assert after["lemonfox"] == spent["lemonfox"]
    assert after.get("pyannote", 0) == spent.get("pyannote", 0)
    assert set(retried.materialized) == {PipelineAsset.NORMALIZED_TRANSCRIPT, PipelineAsset.ANALYSIS}
    assert status(db, call_id) == (CallStatus.COMPLETED, None)


def test_a_transient_diarization_failure_retries_the_call_instead_of_completing_it_with_worse_labels(
    retrying_pipeline: CallPipeline, db: CallDatabase, simulator: SimulatorServer, enqueue_sample: Enqueue
) -> None:
    call_id = enqueue_sample("greeting_by_name")
    simulator.admin.set_fault("pyannote", "http_503", times=3)  # every try of the adapter's first request

    first = run(retrying_pipeline, [call_id])[call_id]
    spent = provider_requests(simulator)
    retried = run(retrying_pipeline, [call_id])[call_id]

    assert first.retry_of == ErrorCode.DIARIZATION_UNAVAILABLE
    assert retried.succeeded, retried
    assert retried.materialized[PipelineAsset.RAW_TRANSCRIPT] == {"reused": True}
    assert PipelineAsset.DIARIZATION in retried.materialized
    assert provider_requests(simulator)["lemonfox"] == spent["lemonfox"]
    assert ArtifactType.DIARIZATION_JSON in db.get_artifacts(call_id)
    assert not any(e.stage == "PYANNOTE_FAILED_FALLBACK" for e in db.list_events(call_id))
