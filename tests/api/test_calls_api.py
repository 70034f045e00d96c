"""The calls API against real PostgreSQL and the S3-compatible server: every endpoint, its errors,
and user scoping (another user's call is a 404, never a 403)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from scryon_dagster.adapters.db.api_queries import ApiQueries
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.api import create_app
from scryon_dagster.domain.calls import ArtifactType, CallStatus, Direction
from scryon_dagster.domain.storage_keys import call_prefix
from tests.api.conftest import ALICE, BOB, Api, api_settings, complete_call, error, wav_bytes

METADATA = {
    "title": "Quarterly review",
    "contactName": "Ravi",
    "contactId": "contacts:42",
    "phoneNumber": "+91 98765 43210",
    "organization": "Acme",
    "direction": "OUTGOING",
    "recordedAt": "2026-05-29T13:00:00Z",
    "durationSeconds": 240,
}


def objects(store: ObjectStore, db: CallDatabase, call_id: UUID) -> list[str]:
    call = db.get_call(call_id)
    assert call is not None
    return [info.key for info in store.list_objects(call_prefix(call.user_id, call_id))]


# --- upload -------------------------------------------------------------------------------------


def test_an_upload_is_stored_and_queued_with_its_metadata(api: Api, db: CallDatabase, store: ObjectStore) -> None:
    audio = wav_bytes(2.0)

    response = api.upload(audio, metadata=METADATA)

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "QUEUED"
    call = db.get_call(UUID(body["callId"]))
    assert call is not None
    assert (call.status, call.title, call.contact_name, call.direction) == (
        CallStatus.QUEUED, "Quarterly review", "Ravi", Direction.OUTGOING,
    )  # fmt: skip
    assert call.recorded_at == datetime(2026, 5, 29, 13, 0, tzinfo=UTC)
    assert call.duration_seconds == 2.0  # measured from the audio; the metadata claimed 240
    temp_audio = db.get_artifacts(call.id)[ArtifactType.TEMP_AUDIO]
    assert store.get_bytes(temp_audio.storage_key) == audio
    assert temp_audio.byte_size == len(audio)


def test_the_title_part_stands_in_for_a_missing_metadata_title(api: Api, db: CallDatabase) -> None:
    call_id = api.queue_call(metadata={"direction": "incoming"}, extra_parts={"title": "From the title part"})

    call = db.get_call(call_id)
    assert call is not None
    assert (call.title, call.direction) == ("From the title part", Direction.INCOMING)


def test_a_retried_upload_with_the_same_idempotency_key_returns_the_same_call(
    api: Api, db: CallDatabase, store: ObjectStore
) -> None:
    first = api.upload(metadata=METADATA, headers={"Idempotency-Key": "upload-7"})
    again = api.upload(metadata=METADATA, headers={"Idempotency-Key": "upload-7"})
    other_key = api.upload(metadata=METADATA, headers={"Idempotency-Key": "upload-8"})
    other_user = api.upload(metadata=METADATA, headers={"Idempotency-Key": "upload-7"}, user=BOB)

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len({first.json()["callId"], other_key.json()["callId"], other_user.json()["callId"]}) == 3
    alice_calls = api.request("GET", "/api/calls").json()["items"]
    assert len(alice_calls) == 2
    assert len(objects(store, db, UUID(first.json()["callId"]))) == 1


def test_an_idempotency_key_replays_its_call_for_24_hours_only(api: Api, db: CallDatabase) -> None:
    first = api.queue_call(headers={"Idempotency-Key": "upload-9"})
    db.query(
        "UPDATE upload_idempotency_keys SET created_at = now() - interval '25 hours' WHERE idempotency_key = %s",
        ("upload-9",),
    )

    retried = api.queue_call(headers={"Idempotency-Key": "upload-9"})
    again = api.upload(headers={"Idempotency-Key": "upload-9"})

    assert retried != first
    assert again.json()["callId"] == str(retried)  # the key now replays the new call
    assert again.headers["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize(
    "metadata",
    [
        "{not json",
        "[1, 2]",
        {"direction": "SIDEWAYS"},
        {"recordedAt": "2026-05-29T13:00:00"},  # no time zone
        {"durationSeconds": -5},
        {"favouriteColour": "blue"},
        {"title": "x" * 501},
    ],
)
def test_bad_metadata_is_400_and_stores_nothing(
    api: Api, db: CallDatabase, store: ObjectStore, s3_bucket: str, metadata: object
) -> None:
    response = api.upload(metadata=metadata)  # type: ignore[arg-type]

    assert error(response) == (400, "validation_failed")
    assert api.request("GET", "/api/calls").json()["items"] == []
    assert list(store.list_objects("")) == []


def test_malformed_uploads_are_400(api: Api) -> None:
    no_file = api.request("POST", "/api/calls/analyze", files={"metadata": (None, "{}")})
    empty = api.upload(b"")
    unexpected = api.upload(extra_parts={"comment": "hello"})
    truncated = api.request(
        "POST",
        "/api/calls/analyze",
        content=b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF',
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    no_boundary = api.request(
        "POST", "/api/calls/analyze", content=b"x", headers={"Content-Type": "multipart/form-data"}
    )

    for response in (no_file, empty, unexpected, truncated, no_boundary):
        assert error(response) == (400, "validation_failed"), response.text


def test_audio_over_max_file_size_is_413_and_stores_nothing(
    db: CallDatabase, store: ObjectStore, pipeline_env: dict[str, str]
) -> None:
    settings = api_settings(max_file_size=16 * 1024)
    with TestClient(create_app(settings, db=db, store=store)) as client:
        response = Api(client).upload(wav_bytes(2.0))

    assert error(response) == (413, "payload_too_large")
    assert list(store.list_objects("")) == []
    alice = db.find_user(ALICE)  # signed in by her token; nothing of the upload is kept
    assert alice is not None
    assert ApiQueries(db).list_calls(alice.id, limit=1) == []


def test_unknown_audio_and_non_multipart_bodies_are_415(api: Api, store: ObjectStore) -> None:
    not_audio = api.upload(b"%PDF-1.7 this is a document, not a recording" * 10, filename="call.wav")
    json_body = api.request("POST", "/api/calls/analyze", json={"file": "nope"})

    assert error(not_audio) == (415, "unsupported_media_type")
    assert error(json_body) == (415, "unsupported_media_type")
    assert list(store.list_objects("")) == []


# --- reading --------------------------------------------------------------------------------------


def test_list_pages_newest_first_with_a_cursor_and_filters_by_status(
    api: Api, db: CallDatabase, store: ObjectStore
) -> None:
    ids = [api.queue_call(metadata={"title": f"call {n}"}) for n in range(5)]
    complete_call(db, store, ids[1])
    api.queue_call(user=BOB)

    first = api.request("GET", "/api/calls", params={"limit": 2}).json()
    second = api.request("GET", "/api/calls", params={"limit": 2, "cursor": first["nextCursor"]}).json()
    third = api.request("GET", "/api/calls", params={"limit": 2, "cursor": second["nextCursor"]}).json()
    completed = api.request("GET", "/api/calls", params={"status": "COMPLETED"}).json()

    pages = [first, second, third]
    listed = [UUID(item["callId"]) for page in pages for item in page["items"]]
    assert listed == list(reversed(ids))
    assert third["nextCursor"] is None
    assert [item["callId"] for item in completed["items"]] == [str(ids[1])]
    assert completed["items"][0]["actionItemCount"] == 0
    assert completed["items"][0]["firstActionTitle"] is None


def test_the_list_peeks_at_live_action_items(api: Api, db: CallDatabase) -> None:
    call_id = api.queue_call()
    for title, status in (("Dismissed one", "DISMISSED"), ("Send the quote", "OPEN"), ("Book the demo", "DONE")):
        db.query(
            "INSERT INTO action_items (call_record_id, title, status, source) VALUES (%s, %s, %s, 'AI')",
            (call_id, title, status),
        )

    (item,) = api.request("GET", "/api/calls").json()["items"]

    assert (item["actionItemCount"], item["firstActionTitle"]) == (2, "Send the quote")


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"status": "SLEEPING"}, {"cursor": "not-a-cursor"}, {"cursor": "e30"}],
)
def test_bad_list_parameters_are_400(api: Api, params: dict[str, object]) -> None:
    assert error(api.request("GET", "/api/calls", params=params)) == (400, "validation_failed")


def test_status_poll_returns_only_the_callers_calls(api: Api) -> None:
    mine = [api.queue_call(), api.queue_call()]
    theirs = api.queue_call(user=BOB)
    ids = ",".join(str(call_id) for call_id in [*mine, theirs, uuid4()])

    body = api.request("GET", "/api/calls/status", params={"ids": ids}).json()

    assert body == {"items": [{"callId": str(call_id), "status": "QUEUED"} for call_id in mine], "nextPollMs": 3000}
    assert error(api.request("GET", "/api/calls/status", params={"ids": "nope"})) == (400, "validation_failed")
    too_many = ",".join(str(uuid4()) for _ in range(101))
    assert error(api.request("GET", "/api/calls/status", params={"ids": too_many})) == (400, "validation_failed")


def test_call_detail_and_another_users_call_is_not_found(api: Api) -> None:
    call_id = api.queue_call(metadata=METADATA)

    detail = api.request("GET", f"/api/calls/{call_id}")
    as_bob = api.request("GET", f"/api/calls/{call_id}", user=BOB)
    unknown = api.request("GET", f"/api/calls/{uuid4()}")
    malformed = api.request("GET", "/api/calls/not-a-uuid")

    assert detail.status_code == 200
    body = detail.json()
    assert (body["callId"], body["status"], body["phoneNumber"], body["errorReason"]) == (
        str(call_id), "QUEUED", "+91 98765 43210", None,
    )  # fmt: skip
    assert error(as_bob) == error(unknown) == (404, "call_not_found")
    assert error(malformed) == (400, "validation_failed")


def test_transcript_and_analysis_are_served_once_completed(api: Api, db: CallDatabase, store: ObjectStore) -> None:
    call_id = api.queue_call()

    for document in ("transcript", "analysis"):
        assert error(api.request("GET", f"/api/calls/{call_id}/{document}")) == (422, "call_not_completed")
    stored = complete_call(db, store, call_id)

    transcript = api.request("GET", f"/api/calls/{call_id}/transcript")
    analysis = api.request("GET", f"/api/calls/{call_id}/analysis")
    assert transcript.status_code == analysis.status_code == 200
    assert transcript.content == stored["NORMALIZED_TRANSCRIPT_JSON"]
    assert analysis.json() == {**json.loads(stored["ANALYSIS_JSON"]), "shortSummary": "A short call."}
    assert transcript.headers["content-type"] == analysis.headers["content-type"] == "application/json"
    for document in ("transcript", "analysis"):
        assert error(api.request("GET", f"/api/calls/{call_id}/{document}", user=BOB)) == (404, "call_not_found")


def test_a_call_being_reprocessed_or_failed_again_still_serves_its_stored_documents(
    api: Api, db: CallDatabase, store: ObjectStore
) -> None:
    call_id = api.queue_call()
    stored = complete_call(db, store, call_id)
    assert db.transition(call_id, CallStatus.COMPLETED, CallStatus.QUEUED)  # the runbook's re-queue

    for status in (CallStatus.QUEUED, CallStatus.TRANSCRIBING, CallStatus.FAILED):
        if status is CallStatus.TRANSCRIBING:
            db.begin_processing([call_id], batch_id=uuid4())
        if status is CallStatus.FAILED:
            db.transition(call_id, CallStatus.TRANSCRIBING, CallStatus.FAILED, error_reason="analysis_unavailable")
        transcript = api.request("GET", f"/api/calls/{call_id}/transcript")
        assert transcript.status_code == 200, status
        assert transcript.content == stored["NORMALIZED_TRANSCRIPT_JSON"]
        assert api.request("GET", f"/api/calls/{call_id}/analysis").json()["oneLineSummary"] == "A short call."


def test_a_completed_call_without_analysis_has_no_analysis_document(
    api: Api, db: CallDatabase, store: ObjectStore
) -> None:
    call_id = api.queue_call()
    complete_call(db, store, call_id, analysis=False)

    assert error(api.request("GET", f"/api/calls/{call_id}/analysis")) == (404, "artifact_not_found")


# --- deleting -----------------------------------------------------------------------------------


def test_delete_removes_objects_then_the_row(api: Api, db: CallDatabase, store: ObjectStore) -> None:
    call_id = api.queue_call(headers={"Idempotency-Key": "k-1"})
    complete_call(db, store, call_id)
    assert len(objects(store, db, call_id)) == 3
    call = db.get_call(call_id)
    assert call is not None

    assert error(api.request("DELETE", f"/api/calls/{call_id}", user=BOB)) == (404, "call_not_found")
    assert db.get_call(call_id) is not None
    response = api.request("DELETE", f"/api/calls/{call_id}")

    assert response.status_code == 204
    assert db.get_call(call_id) is None
    assert db.get_artifacts(call_id) == {}
    assert list(store.list_objects(call_prefix(call.user_id, call_id))) == []
    assert error(api.request("DELETE", f"/api/calls/{call_id}")) == (404, "call_not_found")
    # the idempotency key went with the call: a retry now creates a new one
    assert api.upload(headers={"Idempotency-Key": "k-1"}).json()["callId"] != str(call_id)


def test_bulk_delete_counts_deleted_and_missing(api: Api, db: CallDatabase) -> None:
    mine = [api.queue_call(), api.queue_call()]
    theirs = api.queue_call(user=BOB)

    response = api.request("DELETE", "/api/calls", json={"callIds": [str(i) for i in [*mine, theirs, uuid4()]]})

    assert response.status_code == 200
    assert response.json() == {"deleted": 2, "missing": 2, "failed": []}
    assert all(db.get_call(call_id) is None for call_id in mine)
    assert db.get_call(theirs) is not None
    assert error(api.request("DELETE", "/api/calls", json={"callIds": []})) == (400, "validation_failed")
    assert error(api.request("DELETE", "/api/calls", json={"ids": [str(mine[0])]})) == (400, "validation_failed")


# --- reprocessing -------------------------------------------------------------------------------


def test_reprocess_requeues_a_finished_call_once(api: Api, db: CallDatabase, store: ObjectStore) -> None:
    call_id = api.queue_call()
    assert error(api.request("POST", f"/api/calls/{call_id}/reprocess", user=BOB)) == (404, "call_not_found")
    db.begin_processing([call_id], batch_id=uuid4())
    assert error(api.request("POST", f"/api/calls/{call_id}/reprocess")) == (409, "call_in_progress")
    db.transition(call_id, CallStatus.TRANSCRIBING, CallStatus.FAILED, error_reason="transcription_timeout")

    first = api.request("POST", f"/api/calls/{call_id}/reprocess")
    second = api.request("POST", f"/api/calls/{call_id}/reprocess")

    assert first.status_code == second.status_code == 202
    assert first.json() == second.json() == {"callId": str(call_id), "status": "QUEUED"}
    call = db.get_call(call_id)
    assert call is not None
    assert (call.status, call.error_reason, call.claim_id) == (CallStatus.QUEUED, None, None)
    moves = [e.error_message for e in db.list_events(call_id) if e.error_message == "status -> QUEUED"]
    assert len(moves) == 1


def test_reprocess_without_temp_audio_is_refused(api: Api, db: CallDatabase, store: ObjectStore) -> None:
    call_id = api.queue_call()
    complete_call(db, store, call_id)
    store.delete(db.get_artifacts(call_id)[ArtifactType.TEMP_AUDIO].storage_key)

    assert error(api.request("POST", f"/api/calls/{call_id}/reprocess")) == (409, "audio_missing")
    call = db.get_call(call_id)
    assert call is not None
    assert call.status is CallStatus.COMPLETED
