"""Voice profiles end to end on real parts: enrollment through the API (sample limits, consent, the
voiceprint made by the simulator's pyannoteAI over HTTP), status and deletion, and then a processed
call of the enrolled user whose voice is matched (labelSource VOICE_EMBEDDING)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.api import create_app
from scryon_dagster.domain.calls import ArtifactType, CallStatus
from scryon_dagster.domain.flags import FeatureFlag
from scryon_dagster.domain.transcript.models import LabelSource, NormalizedTranscript, Role
from scryon_dagster.pipeline.outcomes import StageSelection
from scryon_dagster.pipeline.runner import build_call_pipeline
from scryon_dagster.settings import load_settings
from scryon_dagster.simulator import SimulatorServer
from tests.api.conftest import ALICE, BOB, Api, ApiServer, api_settings, error, wav_bytes
from tests.api.identity_provider import shared_identity_provider
from tests.fixtures.pipeline import Enqueue

PATH = "/api/users/me/voice-profile"
CONSENT = "v1"


def enroll(api: Api, audio: bytes, *, consent: str | None = CONSENT, user: str = ALICE) -> httpx.Response:
    files: dict[str, Any] = {"file": ("sample.wav", audio, "audio/wav")}
    if consent is not None:
        files["consentVersion"] = (None, consent)
    return api.request("POST", PATH, user=user, files=files)


def voiceprint_jobs(simulator: SimulatorServer) -> int:
    requests: dict[str, int] = simulator.admin.stats()["requests"].get("pyannote", {})
    return requests.get("POST /v1/voiceprint", 0)


@pytest.fixture
def voice_api(pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore) -> Iterator[Api]:
    app = create_app(api_settings(scryon_voice_embedding_enabled=True), db=db, store=store)
    with TestClient(app) as client:
        yield Api(client)


def test_a_sample_becomes_a_stored_voiceprint_with_its_status_and_can_be_deleted(
    voice_api: Api, db: CallDatabase, simulator: SimulatorServer
) -> None:
    response = enroll(voice_api, wav_bytes(20.0))

    assert response.status_code == 201, response.text
    status = response.json()
    assert status["enrolled"] is True
    assert (status["provider"], status["model"], status["consentVersion"]) == ("pyannote", "precision-2", CONSENT)
    assert status["consentCurrent"] is True
    assert status["sampleDurationSeconds"] == 20.0
    assert "voiceprint" not in response.text
    assert "embedding" not in response.text
    assert voiceprint_jobs(simulator) == 1
    user = db.find_user(ALICE)
    assert user is not None
    profile = db.get_voice_profile(user.id)
    assert profile is not None
    assert isinstance(profile.embedding_json, dict)
    assert profile.embedding_json["voiceprint"]

    assert voice_api.request("GET", f"{PATH}/status").json() == status
    assert voice_api.request("GET", f"{PATH}/status", user=BOB).json()["enrolled"] is False

    assert voice_api.request("DELETE", PATH).status_code == 204
    assert voice_api.request("GET", f"{PATH}/status").json()["enrolled"] is False
    assert db.get_voice_profile(user.id) is None
    assert voice_api.request("DELETE", PATH).status_code == 204  # idempotent


def test_a_sample_longer_than_pyannotes_voiceprint_limit_is_cut_to_it(
    voice_api: Api, simulator: SimulatorServer
) -> None:
    # 40 s is within SCRYON_VOICE_SAMPLE_MAX_SECONDS (45) but pyannoteAI takes 30 s at most: sent cut.
    response = enroll(voice_api, wav_bytes(40.0))

    assert response.status_code == 201, response.text
    assert response.json()["sampleDurationSeconds"] == 40.0
    assert voiceprint_jobs(simulator) == 1


def test_enrolling_again_replaces_the_profile(voice_api: Api, db: CallDatabase) -> None:
    first = enroll(voice_api, wav_bytes(16.0)).json()
    second = enroll(voice_api, wav_bytes(25.0)).json()

    assert second["sampleDurationSeconds"] == 25.0
    assert second["createdAt"] == first["createdAt"]
    assert second["updatedAt"] > first["updatedAt"]
    assert db.query("SELECT count(*) AS n FROM user_voice_profiles") == [{"n": 1}]


@pytest.mark.parametrize(
    ("audio", "consent", "expected"),
    [
        (wav_bytes(20.0), None, (400, "consent_required")),
        (wav_bytes(20.0), "v0", (400, "consent_required")),
        (wav_bytes(5.0), CONSENT, (422, "audio_too_short")),
        (wav_bytes(50.0, sample_rate=8_000), CONSENT, (422, "audio_too_long")),  # 0.8 MB
        (b"RIFF\x24\x80\x00\x00WAVE" + random.Random(17).randbytes(32_000), CONSENT, (422, "audio_undecodable")),
        (wav_bytes(20.0, sample_rate=48_000), CONSENT, (413, "payload_too_large")),  # 1.9 MB > 1 MB
    ],
    ids=["no consent", "an old consent version", "5 s", "50 s", "not audio", "over the size limit"],
)
def test_a_sample_outside_the_limits_or_without_consent_is_refused_and_nothing_is_made(
    pipeline_env: dict[str, str],
    db: CallDatabase,
    store: ObjectStore,
    simulator: SimulatorServer,
    audio: bytes,
    consent: str | None,
    expected: tuple[int, str],
) -> None:
    settings = api_settings(scryon_voice_embedding_enabled=True, scryon_voice_sample_max_size_mb=1)
    with TestClient(create_app(settings, db=db, store=store)) as client:
        response = enroll(Api(client), audio, consent=consent)

    assert error(response) == expected
    assert voiceprint_jobs(simulator) == 0
    assert db.query("SELECT count(*) AS n FROM user_voice_profiles") == [{"n": 0}]


def test_the_refusals_say_what_the_client_needs(voice_api: Api) -> None:
    no_consent = enroll(voice_api, wav_bytes(20.0), consent="v0").json()["error"]
    too_short = enroll(voice_api, wav_bytes(5.0)).json()["error"]

    assert no_consent["details"] == {"requiredConsentVersion": CONSENT}
    assert too_short["details"] == {"minSeconds": 15.0, "maxSeconds": 45.0, "seconds": 5.0}


@pytest.mark.parametrize(
    ("fault", "expected"), [("http_400", (502, "provider_error")), ("http_503", (503, "service_unavailable"))]
)
def test_a_provider_refusal_or_outage_stores_nothing(
    voice_api: Api, db: CallDatabase, simulator: SimulatorServer, fault: str, expected: tuple[int, str]
) -> None:
    simulator.admin.set_fault("pyannote", fault, times=-1)

    assert error(enroll(voice_api, wav_bytes(20.0))) == expected
    assert db.query("SELECT count(*) AS n FROM user_voice_profiles") == [{"n": 0}]


def test_with_the_feature_off_enrollment_and_status_are_404_but_deletion_works(
    api: Api, voice_api: Api, db: CallDatabase
) -> None:
    assert enroll(voice_api, wav_bytes(20.0)).status_code == 201

    # `api` runs with SCRYON_VOICE_EMBEDDING_ENABLED unset (off), as by default
    assert error(enroll(api, wav_bytes(20.0))) == (404, "feature_not_available")
    assert error(api.request("GET", f"{PATH}/status")) == (404, "feature_not_available")
    assert api.request("DELETE", PATH).status_code == 204
    assert db.query("SELECT count(*) AS n FROM user_voice_profiles") == [{"n": 0}]


def test_the_kill_switch_in_the_flag_table_wins_over_the_environment(voice_api: Api, db: CallDatabase) -> None:
    db.set_feature_flag(FeatureFlag.SCRYON_VOICE_EMBEDDING_ENABLED.value, False, updated_by="test")

    assert error(voice_api.request("GET", f"{PATH}/status")) == (404, "feature_not_available")


def test_every_voice_profile_route_needs_credentials(voice_api: Api) -> None:
    for method, path in (("POST", PATH), ("GET", f"{PATH}/status"), ("DELETE", PATH)):
        assert error(voice_api.request(method, path, user=None)) == (401, "auth_missing")


# --- from enrollment to a matched call ---------------------------------------------------------------------


@pytest.fixture
def voice_match_on(monkeypatch: pytest.MonkeyPatch, pipeline_env: dict[str, str]) -> None:
    """The deployment's switch: SCRYON_VOICE_EMBEDDING_ENABLED=true, with pyannoteAI on (pipeline_env)."""
    monkeypatch.setenv("SCRYON_VOICE_EMBEDDING_ENABLED", "true")
    assert pipeline_env["PYANNOTE_ENABLED"] == "true"


def test_an_enrolled_users_voice_is_matched_in_their_processed_call(
    voice_match_on: None, db: CallDatabase, store: ObjectStore, simulator: SimulatorServer, enqueue_sample: Enqueue
) -> None:
    call_id = enqueue_sample("no_names")  # nobody is named: only the voice tells who the user is
    call = db.get_call(call_id)
    assert call is not None
    owner = db.get_user(call.user_id)
    assert owner is not None

    # The user enrolls through the API served over HTTP, with their ID token.
    app: FastAPI = create_app(api_settings(), db=db, store=store)
    with ApiServer() as server:
        server.serve(app)
        token = shared_identity_provider().token(owner.external_user_id)
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}) as client:
            enrolled = client.post(
                PATH, files={"file": ("me.wav", wav_bytes(20.0), "audio/wav"), "consentVersion": (None, CONSENT)}
            )
    assert enrolled.status_code == 201, enrolled.text

    pipeline = build_call_pipeline(load_settings(), db, store)
    try:
        outcomes = list(pipeline.run_batch([call_id], StageSelection.everything(), batch_id=None, run_id=str(uuid4())))
    finally:
        pipeline.close()

    assert outcomes[0].succeeded, outcomes[0].error_code
    assert db.get_call(call_id).status is CallStatus.COMPLETED  # type: ignore[union-attr]
    assert simulator.admin.stats()["requests"]["pyannote"].get("POST /v1/identify") == 1
    stored = db.get_artifacts(call_id)[ArtifactType.NORMALIZED_TRANSCRIPT_JSON]
    transcript = NormalizedTranscript.parse(store.get_bytes(stored.storage_key))
    (user_speaker,) = [speaker for speaker in transcript.speakers if speaker.role is Role.USER]
    assert user_speaker.label_source is LabelSource.VOICE_EMBEDDING
    assert user_speaker.voice_profile_matched is True
    assert user_speaker.voice_match_score is not None
    assert user_speaker.voice_match_score >= 0.75
    assert transcript.speaker_resolution.voice_profile_used is True
    assert transcript.speaker_resolution.voice_match_status.value == "MATCHED"
