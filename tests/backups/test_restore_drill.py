"""The restore drill on real parts (PostgreSQL, the S3-compatible server, ffmpeg, the provider simulator):
calls processed, the database backed up by the Dagster job, restored by the operator's command into a
fresh empty database, reconciled, and served again by the API."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from uuid import UUID, uuid4

import dagster as dg
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.api import create_app
from scryon_dagster.cli import main
from scryon_dagster.definitions import defs
from scryon_dagster.domain.calls import ArtifactType, CallStatus
from scryon_dagster.pipeline.backups import RESTORED_CALL_ERROR_CODE
from scryon_dagster.pipeline.runner import CallPipeline, build_call_pipeline
from scryon_dagster.settings import Settings, load_settings
from scryon_dagster.simulator import SimulatorServer
from tests.api.conftest import Api, api_settings
from tests.fixtures.pipeline import Enqueue
from tests.fixtures.postgres import create_database, drop_database
from tests.pipeline.test_call_pipeline import provider_requests, run

SAMPLES = ("greeting_by_name", "self_introduction", "no_names")
# The analysis request is held this long, so a backup can be taken while calls wait for it.
LLM_HOLD_SECONDS = 8.0


@pytest.fixture
def fresh_database_url(postgres_server_url: str) -> Iterator[str]:
    """The empty database that stands in for the lost one."""
    url = create_database(postgres_server_url, "scryon_restored")
    yield url
    drop_database(postgres_server_url, url)


def back_up(instance: dg.DagsterInstance) -> str:
    result = defs.resolve_job_def("backup_database").execute_in_process(instance=instance)
    (output,) = [event for event in result.all_node_events if event.event_type_value == "STEP_OUTPUT"]
    return str(output.step_output_data.metadata["object_key"].value)


def restore(monkeypatch: pytest.MonkeyPatch, database_url: str, dump_key: str) -> None:
    """``scryon-dagster restore`` as the runbook has the operator run it, against ``database_url``."""
    monkeypatch.setenv("SCRYON_DATABASE_URL", database_url)
    name = str(conninfo_to_dict(database_url)["dbname"])
    assert main(["restore", "--dump", dump_key.rsplit("/", 1)[1], "--confirm-database", name]) == 0


def every_row(database_url: str) -> dict[str, list[str]]:
    """Every row of every table of the database, as JSON text, per table."""
    with psycopg.connect(database_url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            ).fetchall()
        ]
        return {
            table: sorted(
                row[0]
                for row in conn.execute(
                    sql.SQL("SELECT row_to_json(t)::text FROM {} t").format(sql.Identifier(table))
                ).fetchall()
            )
            for table in tables
        }


def transcript(api: Api, call_id: UUID, slug: str) -> bytes:
    response = api.request("GET", f"/api/calls/{call_id}/transcript", user=f"user-{slug}")
    assert response.status_code == 200, response.text
    return response.content


def test_drill_every_call_row_artifact_action_item_and_event_comes_back_and_the_api_serves_the_same_transcripts(
    pipeline_env: dict[str, str],
    pipeline: CallPipeline,
    db: CallDatabase,
    store: ObjectStore,
    enqueue_sample: Enqueue,
    instance: dg.DagsterInstance,
    database_url: str,
    fresh_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls = {enqueue_sample(slug): slug for slug in SAMPLES}
    assert all(outcome.succeeded for outcome in run(pipeline, list(calls)).values())
    assert sum(len(db.list_action_items(call_id)) for call_id in calls) > 0
    before = every_row(database_url)
    with TestClient(create_app(api_settings(), db=db, store=store)) as client:
        served_before = {call_id: transcript(Api(client), call_id, slug) for call_id, slug in calls.items()}

    dump_key = back_up(instance)
    restore(monkeypatch, fresh_database_url, dump_key)

    printed = capsys.readouterr().out
    assert f"restored {dump_key}" in printed
    assert "0 re-queued for a retry, 0 failed" in printed
    assert "reconcile: 0 artifact rows without their object, 0 orphan objects, 0 untracked objects" in printed
    after = every_row(fresh_database_url)
    assert after == before
    for table in ("call_records", "call_artifacts", "action_items", "call_processing_events", "users"):
        assert after[table], table
    with (
        CallDatabase(fresh_database_url) as restored,
        TestClient(create_app(api_settings(), db=restored, store=store)) as client,
    ):
        api = Api(client)
        for call_id, slug in calls.items():
            assert transcript(api, call_id, slug) == served_before[call_id]
            detail = api.request("GET", f"/api/calls/{call_id}", user=f"user-{slug}").json()
            assert detail["status"] == CallStatus.COMPLETED.value


def test_a_backup_taken_mid_flight_restores_consistently_and_its_in_flight_calls_are_retried_not_stuck(
    pipeline_env: dict[str, str],
    pipeline: CallPipeline,
    settings: Settings,
    db: CallDatabase,
    store: ObjectStore,
    simulator: SimulatorServer,
    enqueue_sample: Enqueue,
    instance: dg.DagsterInstance,
    database_url: str,
    fresh_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finished = enqueue_sample("no_names")
    assert run(pipeline, [finished])[finished].succeeded
    in_flight = [enqueue_sample("greeting_by_name"), enqueue_sample("self_introduction")]
    simulator.admin.set_fault("llm", "slow", times=-1, delay_seconds=LLM_HOLD_SECONDS)
    worker = threading.Thread(target=run, args=(pipeline, in_flight))
    worker.start()
    deadline = time.monotonic() + 30
    while {status_of(db, call_id) for call_id in in_flight} != {CallStatus.ANALYZING}:
        assert time.monotonic() < deadline, "the calls never reached the analysis"
        time.sleep(0.05)

    waiting = enqueue_sample("voicemail")
    assert [claimed.call_id for claimed in db.claim_queued(uuid4(), 10)] == [waiting]  # its run not started yet

    dump_key = back_up(instance)
    worker.join()
    simulator.admin.clear_faults()
    assert {status_of(db, call_id) for call_id in in_flight} == {CallStatus.COMPLETED}
    original = every_row(database_url)
    monkeypatch.setenv("SCRYON_CALL_MAX_RETRIES", "4")  # production's retries (the tests' default is none)
    restore(monkeypatch, fresh_database_url, dump_key)

    restored = every_row(fresh_database_url)
    # one snapshot: the finished call whole, the others exactly as far as they had got, nothing torn
    for table in ("users", "call_artifacts", "call_sentiment_summary", "call_llm_usage", "action_items"):
        assert set(restored[table]) <= set(original[table]), table
    with CallDatabase(fresh_database_url) as restored_db:
        assert restored_db.get_calls([finished])[finished] == db.get_call(finished)
        for call_id in in_flight:
            call = restored_db.get_call(call_id)
            assert call is not None
            assert (call.status, call.retry_count, call.claim_id) == (CallStatus.QUEUED, 1, None)
            artifacts = restored_db.get_artifacts(call_id)
            assert ArtifactType.RAW_TRANSCRIPT_JSON in artifacts
            assert ArtifactType.ANALYSIS_JSON not in artifacts
            assert restored_db.list_action_items(call_id) == []
            (requeue,) = [e for e in restored_db.list_events(call_id) if e.error_code == RESTORED_CALL_ERROR_CODE]
            assert requeue.error_message is not None
            assert requeue.error_message.startswith("status -> QUEUED (retry 1")

        # the waiting call is the pickup's again at once (the re-queued ones after their retry wait)
        assert [claimed.call_id for claimed in restored_db.claim_queued(uuid4(), 10)] == [waiting]

        # the retry finishes them from what they had stored: no transcription or diarization again
        spent_before = provider_requests(simulator)
        rerun = build_call_pipeline(load_settings(), restored_db, store)
        try:
            outcomes = run(rerun, in_flight)
        finally:
            rerun.close()
        assert all(outcome.succeeded for outcome in outcomes.values())
        spent = provider_requests(simulator)
        assert {provider: spent.get(provider, 0) - spent_before.get(provider, 0) for provider in spent} == {
            provider: (len(in_flight) if provider == "llm" else 0) for provider in spent
        }
        for call_id in in_flight:
            assert status_of(restored_db, call_id) is CallStatus.COMPLETED
            assert restored_db.list_action_items(call_id)


def status_of(db: CallDatabase, call_id: UUID) -> CallStatus:
    call = db.get_call(call_id)
    assert call is not None
    return call.status
