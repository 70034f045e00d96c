"""Callback mode end to end: the upload through the API, the QUEUED sensor's run submitting the
transcription with a signed URL and letting go of the call, the simulator delivering the transcript
to the API on a real loopback port, and the sensor resuming the call from normalization to
COMPLETED — with the real pipeline, PostgreSQL, the S3 server and ffmpeg."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import dagster as dg
import httpx
import pytest

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.api import create_app
from scryon_dagster.assets.calls import call_pipeline
from scryon_dagster.domain.calls import ArtifactType, CallStatus
from scryon_dagster.domain.provider_outputs import RawTranscript
from scryon_dagster.jobs.calls import process_calls_job, process_listed_calls_job
from scryon_dagster.partitions import CALLS_PARTITIONS
from scryon_dagster.resources import CallDatabaseResource, SettingsResource, build_resources
from scryon_dagster.sensors.queued_calls import queued_calls_sensor
from scryon_dagster.simulator import SimulatorServer
from tests.api.conftest import ALICE, API_KEY, WEBHOOK_SECRET, ApiServer, api_settings
from tests.api.identity_provider import shared_identity_provider
from tests.fixtures.pipeline import Enqueue, sample_by_slug
from tests.fixtures.simulator import delivery_stats

DELIVERY_DEADLINE_SECONDS = 60
# The pipeline's part of the code location: what the QUEUED sensor launches.
PIPELINE_DEFS = dg.Definitions(
    assets=[call_pipeline], jobs=[process_calls_job, process_listed_calls_job], resources=build_resources()
)


@pytest.fixture
def api_server(
    monkeypatch: pytest.MonkeyPatch, pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore
) -> Iterator[ApiServer]:
    """The API on a loopback port, and callback mode switched on for the runs (they read the environment)."""
    with ApiServer() as server:
        for name, value in {
            "SCRYON_TRANSCRIPTION_CALLBACK_ENABLED": "true",
            "SCRYON_PUBLIC_BASE_URL": server.base_url,
            "SCRYON_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "SCRYON_API_KEY": API_KEY,
        }.items():
            monkeypatch.setenv(name, value)
        server.serve(create_app(api_settings(), db=db, store=store))
        yield server


def tick(instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    config = SettingsResource()
    resources = {"config": config, "database": CallDatabaseResource(config=config)}
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        result = queued_calls_sensor(context)
    return list(result.run_requests or []) if isinstance(result, dg.SensorResult) else []


def launch(instance: dg.DagsterInstance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    assert request.job_name is not None
    return PIPELINE_DEFS.resolve_job_def(request.job_name).execute_in_process(
        instance=instance, run_config=request.run_config, tags=request.tags, raise_on_error=False
    )


def callback_state(db: CallDatabase, call_id: UUID) -> dict[str, Any]:
    (row,) = db.query("SELECT status, callback_state, claim_id FROM call_records WHERE id = %s", (call_id,))
    return row


def wait_for_delivery(db: CallDatabase, call_id: UUID) -> None:
    deadline = time.monotonic() + DELIVERY_DEADLINE_SECONDS
    while callback_state(db, call_id)["callback_state"] != "RECEIVED":
        assert time.monotonic() < deadline, "the simulator's callback never arrived"
        time.sleep(0.1)


def materialized(instance: dg.DagsterInstance, asset: str) -> set[str]:
    return instance.get_materialized_partitions(dg.AssetKey(asset))


def test_a_call_completes_through_the_lemonfox_callback(
    api_server: ApiServer,
    db: CallDatabase,
    store: ObjectStore,
    simulator: SimulatorServer,
    sample_audio: dict[str, Any],
    instance: dg.DagsterInstance,
) -> None:
    slug = "greeting_by_name"
    sample = sample_by_slug(slug)
    headers = {"Authorization": f"Bearer {shared_identity_provider().token(ALICE)}"}
    with httpx.Client(base_url=api_server.base_url, headers=headers, timeout=30) as client:
        upload = client.post(
            "/api/calls/analyze",
            files={"file": (f"{slug}.wav", sample_audio[slug].read_bytes(), "audio/wav")},
            data={"metadata": f'{{"direction": "{sample.direction.value}", "contactName": "{sample.contact_name}"}}'},
        )
        assert upload.status_code == 202, upload.text
        call_id = UUID(upload.json()["callId"])

        # 1. The pickup's run diarizes, submits the transcription with its callback URL, and lets go.
        (first,) = tick(instance)
        assert launch(instance, first).success
        handed_off = callback_state(db, call_id)
        assert handed_off["status"] == "TRANSCRIBING"
        assert handed_off["claim_id"] is None
        assert ArtifactType.DIARIZATION_JSON in db.get_artifacts(call_id)
        assert materialized(instance, "diarization") == {str(call_id)}
        assert materialized(instance, "raw_transcript") == set()

        # 2. The simulator delivers the transcript to the API's webhook.
        wait_for_delivery(db, call_id)
        assert delivery_stats(simulator, "lemonfox_callback") == {"delivered": 1}
        raw = store.get_bytes(db.get_artifacts(call_id)[ArtifactType.RAW_TRANSCRIPT_JSON].storage_key)
        assert not RawTranscript.parse(raw).is_empty

        # 3. The next tick resumes the call from normalization, without another provider audio call.
        simulator.admin.reset_stats()
        (resume,) = tick(instance)
        assert resume.job_name == "process_listed_calls"
        config = resume.run_config["ops"]["process_listed_calls_op"]["config"]
        assert config == {"call_ids": [str(call_id)], "assets": ["analysis", "normalized_transcript"]}
        assert launch(instance, resume).success
        assert tick(instance) == []

        call = db.get_call(call_id)
        assert call is not None
        assert (call.status, call.error_reason) == (CallStatus.COMPLETED, None)
        assert dict(simulator.admin.stats()["requests_total"]) == {"llm": 1}
        for asset in ("diarization", "raw_transcript", "normalized_transcript", "analysis"):
            assert materialized(instance, asset) == {str(call_id)}
        assert instance.get_dynamic_partitions(CALLS_PARTITIONS) == [str(call_id)]
        transcript = client.get(f"/api/calls/{call_id}/transcript")
        assert transcript.status_code == 200
        assert transcript.json()["callId"] == str(call_id)
        assert transcript.json()["pipeline"]["diarizationProvider"] == "pyannote"
        assert client.get(f"/api/calls/{call_id}/analysis").status_code == 200

    events = [(e.stage, e.status, e.error_message) for e in db.list_events(call_id)]
    assert ("LEMONFOX_SUBMITTED", "STARTED", None) in events
    assert ("LEMONFOX_SUBMITTED", "COMPLETED", None) in events
    assert ("TRANSCRIBED", "SKIPPED", "awaiting_callback") in events
    assert ("TRANSCRIBED", "COMPLETED", "callback") in events
    assert ("ANALYZED", "COMPLETED", None) in events


def test_an_empty_transcript_delivered_by_callback_fails_the_call(
    api_server: ApiServer,
    db: CallDatabase,
    simulator: SimulatorServer,
    enqueue_sample: Enqueue,
    instance: dg.DagsterInstance,
) -> None:
    call_id = enqueue_sample("no_names")
    simulator.admin.set_fault("lemonfox", "empty_transcript", times=-1)

    (first,) = tick(instance)
    launch(instance, first)  # fails the batch only if the delivery beat the hand-off

    deadline = time.monotonic() + DELIVERY_DEADLINE_SECONDS
    while (call := db.get_call(call_id)) is not None and call.status is not CallStatus.FAILED:
        assert time.monotonic() < deadline, "the simulator's callback never arrived"
        time.sleep(0.1)
    assert call is not None
    assert call.error_reason == "transcription_empty"
    assert ArtifactType.RAW_TRANSCRIPT_JSON not in db.get_artifacts(call_id)
    assert tick(instance) == []
