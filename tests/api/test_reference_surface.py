"""What the reference's clients read besides the basics: the poll hint ``nextPollMs``, the analysis's
legacy aliases, and ``POST /api/calls/{id}/reanalyze`` (a re-derivation without audio provider spend,
run on a call processed through the simulator)."""

from __future__ import annotations

import json
from uuid import UUID, uuid4

import pytest

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.api.analysis_aliases import with_legacy_aliases
from scryon_dagster.api.routes.calls import POLL_IDLE_MS, POLL_SOON_MS, POLL_TRANSCRIBING_MS, next_poll_ms
from scryon_dagster.domain.calls import ArtifactType, CallStatus
from scryon_dagster.pipeline.outcomes import StageSelection
from scryon_dagster.pipeline.runner import CallPipeline
from scryon_dagster.simulator import SimulatorServer
from tests.api.conftest import BOB, Api, complete_call, error
from tests.fixtures.pipeline import Enqueue

# --- nextPollMs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([CallStatus.QUEUED], POLL_SOON_MS),
        ([CallStatus.TRANSCRIBING, CallStatus.ANALYZING], POLL_SOON_MS),
        ([CallStatus.TRANSCRIBING, CallStatus.COMPLETED], POLL_TRANSCRIBING_MS),
        ([CallStatus.COMPLETED, CallStatus.FAILED], POLL_IDLE_MS),
        ([], POLL_IDLE_MS),
    ],
)
def test_the_poll_hint_follows_the_slowest_useful_cadence(statuses: list[CallStatus], expected: int) -> None:
    assert next_poll_ms(statuses) == expected


def test_the_poll_hint_stays_within_the_clients_clamp() -> None:
    # the reference's client clamps the hint to 1-60 s; ours never needs clamping
    assert all(1_000 <= hint <= 60_000 for hint in (POLL_SOON_MS, POLL_TRANSCRIBING_MS, POLL_IDLE_MS))


def test_a_poll_of_finished_calls_hints_a_slow_cadence(api: Api, db: CallDatabase, store: ObjectStore) -> None:
    call_id = api.queue_call()
    complete_call(db, store, call_id)

    body = api.request("GET", "/api/calls/status", params={"ids": str(call_id)}).json()

    assert body == {"items": [{"callId": str(call_id), "status": "COMPLETED"}], "nextPollMs": POLL_IDLE_MS}


# --- analysis legacy aliases -------------------------------------------------------------------------------

V3_ANALYSIS = {
    "schemaVersion": 3,
    "oneLineSummary": "Agreed on a demo.",
    "executiveSummary": "Pricing was discussed; a demo was agreed.",
    "sections": [
        {"id": "sec_001", "items": [{"text": "Price must drop 10%.", "importance": "high"}, {"text": "Minor."}]},
        {"id": "sec_002", "items": [{"text": "Demo on Friday.", "importance": "high"}]},
    ],
    "actionItems": [
        {"title": "Send the invite", "ownerSpeakerId": "spk_1", "ownerSpeakerLabel": "Speaker 1"},
        {"title": "Nobody's", "ownerSpeakerId": None},
    ],
    "tags": ["sales"],
}


def test_the_aliases_mirror_the_current_fields() -> None:
    served = with_legacy_aliases(V3_ANALYSIS)

    assert served["shortSummary"] == "Agreed on a demo."
    assert served["detailedSummary"] == "Pricing was discussed; a demo was agreed."
    assert served["keyPoints"] == ["Price must drop 10%.", "Demo on Friday."]
    assert served["actionItems"][0]["ownerSpeaker"] == "Speaker 1"
    assert "ownerSpeaker" not in served["actionItems"][1]
    assert served["tags"] == ["sales"]
    assert "shortSummary" not in V3_ANALYSIS  # the input is left as it is


def test_a_legacy_shaped_analysis_is_served_untouched() -> None:
    legacy = {"shortSummary": "Old.", "detailedSummary": "Older.", "keyPoints": ["A point."], "actionItems": []}

    assert with_legacy_aliases(legacy) == legacy


def test_the_served_analysis_carries_the_aliases_and_the_stored_one_does_not(
    api: Api, db: CallDatabase, store: ObjectStore
) -> None:
    call_id = api.queue_call()
    complete_call(db, store, call_id)
    key = db.get_artifacts(call_id)[ArtifactType.ANALYSIS_JSON].storage_key
    store.put_bytes(key, json.dumps(V3_ANALYSIS).encode(), "application/json")

    served = api.request("GET", f"/api/calls/{call_id}/analysis").json()

    assert served["keyPoints"] == ["Price must drop 10%.", "Demo on Friday."]
    assert served["shortSummary"] == V3_ANALYSIS["oneLineSummary"]
    assert json.loads(store.get_bytes(key)) == V3_ANALYSIS


# --- reanalyze ---------------------------------------------------------------------------------------------


def processed_call(pipeline: CallPipeline, db: CallDatabase, enqueue_sample: Enqueue) -> tuple[UUID, str]:
    """A sample call processed through the simulator, and its owner's external id."""
    call_id = enqueue_sample("greeting_by_name")
    (outcome,) = pipeline.run_batch([call_id], StageSelection.everything(), batch_id=None, run_id=str(uuid4()))
    assert outcome.succeeded, outcome.error_code
    call = db.get_call(call_id)
    assert call is not None
    owner = db.get_user(call.user_id)
    assert owner is not None
    return call_id, owner.external_user_id


def test_reanalyze_rederives_transcript_and_analysis_without_audio_provider_spend(
    api: Api, pipeline: CallPipeline, db: CallDatabase, simulator: SimulatorServer, enqueue_sample: Enqueue
) -> None:
    call_id, owner = processed_call(pipeline, db, enqueue_sample)
    before = db.get_artifacts(call_id)
    simulator.admin.reset_stats()

    response = api.request("POST", f"/api/calls/{call_id}/reanalyze", user=owner)

    assert response.status_code == 200, response.text
    assert (response.json()["callId"], response.json()["status"]) == (str(call_id), "COMPLETED")
    spent = simulator.admin.stats()["requests_total"]
    assert set(spent) == {"llm"}  # the analysis only: no transcription, no diarization
    after = db.get_artifacts(call_id)
    for rebuilt in (ArtifactType.NORMALIZED_TRANSCRIPT_JSON, ArtifactType.ANALYSIS_JSON):
        assert after[rebuilt].created_at > before[rebuilt].created_at
    for kept in (ArtifactType.RAW_TRANSCRIPT_JSON, ArtifactType.DIARIZATION_JSON, ArtifactType.TEMP_AUDIO):
        assert after[kept].created_at == before[kept].created_at


def test_reanalyze_is_refused_for_other_users_unfinished_calls_and_calls_without_stored_outputs(
    api: Api, pipeline: CallPipeline, db: CallDatabase, store: ObjectStore, enqueue_sample: Enqueue
) -> None:
    call_id, owner = processed_call(pipeline, db, enqueue_sample)
    assert error(api.request("POST", f"/api/calls/{call_id}/reanalyze", user=BOB)) == (404, "call_not_found")

    queued = api.queue_call(user=owner)
    refused = api.request("POST", f"/api/calls/{queued}/reanalyze", user=owner)
    assert error(refused) == (409, "call_not_completed")
    assert refused.json()["error"]["details"] == {"status": "QUEUED"}

    store.delete(db.get_artifacts(call_id)[ArtifactType.RAW_TRANSCRIPT_JSON].storage_key)
    assert error(api.request("POST", f"/api/calls/{call_id}/reanalyze", user=owner)) == (404, "artifact_not_found")
    assert db.get_call(call_id).status is CallStatus.COMPLETED  # type: ignore[union-attr]
