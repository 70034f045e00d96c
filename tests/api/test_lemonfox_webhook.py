"""`POST /api/webhooks/lemonfox` against real PostgreSQL and S3: a genuine delivery is stored and
hands the call back; tampering, expiry and unknown calls are 401 and change nothing; duplicates
and late deliveries are 200 no-ops; secret rotation fails no delivery already in flight."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi.testclient import TestClient

from scryon_dagster.adapters.db.callback_queries import CallbackQueries
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.api import create_app
from scryon_dagster.domain.calls import ArtifactType
from scryon_dagster.pipeline.callbacks import CallbackSigner, CallbackTicket
from tests.api.conftest import OLD_WEBHOOK_SECRET, WEBHOOK_SECRET, Api, api_settings, error

PUBLIC_BASE_URL = "https://scryon.example.com"
TRANSCRIPT = {
    "task": "transcribe",
    "language": "english",
    "duration": 4.2,
    "text": "Hello, this is a test call.",
    "segments": [
        {
            "id": 0,
            "start": 0.0,
            "end": 4.2,
            "text": "Hello, this is a test call.",
            "speaker": "SPEAKER_00",
            "words": [{"word": "Hello,", "start": 0.0, "end": 0.5}],
        }
    ],
}
BODY = json.dumps(TRANSCRIPT).encode()


def signer(secret: str = WEBHOOK_SECRET) -> CallbackSigner:
    return CallbackSigner(PUBLIC_BASE_URL, [secret], timedelta(minutes=30))


@dataclass
class AwaitingCall:
    call_id: UUID
    attempt: int
    ticket: CallbackTicket

    @property
    def target(self) -> str:
        """Path and query of the signed URL, as Lemonfox would request it."""
        parts = urlsplit(self.ticket.url)
        return f"{parts.path}?{parts.query}"


def state(db: CallDatabase, call_id: UUID) -> dict[str, Any]:
    (row,) = db.query(
        "SELECT status, error_reason, callback_state, claim_id, attempt, updated_at FROM call_records WHERE id = %s",
        (call_id,),
    )
    return row


@pytest.fixture
def awaiting(api: Api, db: CallDatabase) -> AwaitingCall:
    """A call whose run submitted its transcription in callback mode and let go of it."""
    call_id = api.queue_call()
    (claim,) = db.begin_processing([call_id], batch_id=uuid4())
    ticket = signer().ticket(call_id)
    callbacks = CallbackQueries(db)
    assert callbacks.await_callback(call_id, attempt=claim.attempt, expires_at=ticket.expires_at)
    assert callbacks.hand_off(call_id, attempt=claim.attempt)
    return AwaitingCall(call_id, claim.attempt, ticket)


def deliver(api: Api, target: str, body: bytes = BODY) -> httpx.Response:
    return api.client.post(target, content=body, headers={"Content-Type": "application/json"})


def with_query(target: str, **changes: str) -> str:
    path, query = target.split("?", 1)
    return f"{path}?{urlencode({**dict(parse_qsl(query)), **changes})}"


def test_a_genuine_delivery_stores_the_transcript_and_hands_the_call_back(
    api: Api, db: CallDatabase, store: ObjectStore, awaiting: AwaitingCall
) -> None:
    response = deliver(api, awaiting.target)

    assert response.status_code == 200
    assert response.json() == {"status": "accepted"}
    artifact = db.get_artifacts(awaiting.call_id)[ArtifactType.RAW_TRANSCRIPT_JSON]
    assert store.get_bytes(artifact.storage_key) == BODY  # the verbatim provider bytes
    assert artifact.byte_size == len(BODY)
    after = state(db, awaiting.call_id)
    assert (after["status"], after["callback_state"]) == ("TRANSCRIBING", "RECEIVED")
    (resumable,) = CallbackQueries(db).claim_received(uuid4(), 10)
    assert resumable.call_id == awaiting.call_id
    events = [(e.stage, e.status, e.error_message) for e in db.list_events(awaiting.call_id)]
    assert ("TRANSCRIBED", "COMPLETED", "callback") in events


def test_a_duplicate_delivery_is_a_no_op(
    api: Api, db: CallDatabase, store: ObjectStore, awaiting: AwaitingCall
) -> None:
    deliver(api, awaiting.target)
    before = state(db, awaiting.call_id)
    artifact = db.get_artifacts(awaiting.call_id)[ArtifactType.RAW_TRANSCRIPT_JSON]

    replay = deliver(api, awaiting.target, body=json.dumps({**TRANSCRIPT, "text": "something else"}).encode())

    assert replay.status_code == 200
    assert replay.json() == {"status": "ignored"}
    assert state(db, awaiting.call_id) == before
    assert db.get_artifacts(awaiting.call_id)[ArtifactType.RAW_TRANSCRIPT_JSON] == artifact
    assert store.get_bytes(artifact.storage_key) == BODY


def test_a_late_delivery_after_the_call_timed_out_changes_nothing(
    api: Api, db: CallDatabase, awaiting: AwaitingCall
) -> None:
    assert CallbackQueries(db).fail_awaiting_callback(awaiting.call_id, attempt=awaiting.attempt)
    before = state(db, awaiting.call_id)

    late = deliver(api, awaiting.target)

    assert (late.status_code, late.json()) == (200, {"status": "ignored"})
    assert state(db, awaiting.call_id) == before
    assert (before["status"], before["error_reason"]) == ("FAILED", "callback_timeout")
    assert ArtifactType.RAW_TRANSCRIPT_JSON not in db.get_artifacts(awaiting.call_id)


def test_a_delivery_for_an_earlier_submission_is_ignored(api: Api, db: CallDatabase, awaiting: AwaitingCall) -> None:
    # the call was submitted again (a new URL, a later expiry); the first URL's delivery is stale
    resubmitted = signer().ticket(awaiting.call_id, now=datetime.now(UTC) + timedelta(minutes=5))
    assert CallbackQueries(db).await_callback(
        awaiting.call_id, attempt=awaiting.attempt, expires_at=resubmitted.expires_at
    )

    stale = deliver(api, awaiting.target)

    assert stale.json() == {"status": "ignored"}
    assert state(db, awaiting.call_id)["callback_state"] == "AWAITING"


@pytest.mark.parametrize(
    "tamper",
    [
        {"sig": "AAAA" + "B" * 39},
        {"exp": "9999999999"},
        {"callId": str(uuid4())},
        {"kid": "0123456789ab"},
        {"extra": "1"},
    ],
)
def test_a_tampered_url_is_401_and_changes_nothing(
    api: Api, db: CallDatabase, awaiting: AwaitingCall, tamper: dict[str, str]
) -> None:
    before = state(db, awaiting.call_id)

    response = deliver(api, with_query(awaiting.target, **tamper))

    assert error(response) == (401, "invalid_signature")
    assert state(db, awaiting.call_id) == before
    assert ArtifactType.RAW_TRANSCRIPT_JSON not in db.get_artifacts(awaiting.call_id)


def test_missing_signature_parameters_are_401(api: Api, awaiting: AwaitingCall) -> None:
    path, query = awaiting.target.split("?", 1)
    without_sig = {key: value for key, value in parse_qsl(query) if key != "sig"}

    for target in (path, f"{path}?{urlencode(without_sig)}"):
        assert deliver(api, target).status_code == 401


def test_an_expired_url_is_401(api: Api, db: CallDatabase) -> None:
    call_id = api.queue_call()
    (claim,) = db.begin_processing([call_id], batch_id=uuid4())
    expired = signer().ticket(call_id, now=datetime.now(UTC) - timedelta(hours=1))
    CallbackQueries(db).await_callback(call_id, attempt=claim.attempt, expires_at=expired.expires_at)
    parts = urlsplit(expired.url)

    response = deliver(api, f"{parts.path}?{parts.query}")

    assert error(response) == (401, "invalid_signature")
    assert state(db, call_id)["callback_state"] == "AWAITING"


def test_a_signed_url_for_an_unknown_call_is_401(api: Api) -> None:
    parts = urlsplit(signer().ticket(uuid4()).url)

    assert deliver(api, f"{parts.path}?{parts.query}").status_code == 401


def test_an_unreadable_body_is_400_and_changes_nothing(api: Api, db: CallDatabase, awaiting: AwaitingCall) -> None:
    before = state(db, awaiting.call_id)

    for body in (b"{not json", b"[]", json.dumps({"text": "no segments", "segments": [{"text": "x"}]}).encode()):
        response = deliver(api, awaiting.target, body=body)
        assert error(response) == (400, "validation_failed")
    assert state(db, awaiting.call_id) == before


def test_an_empty_transcript_fails_the_call_as_in_sync_mode(api: Api, db: CallDatabase, awaiting: AwaitingCall) -> None:
    empty = json.dumps({"task": "transcribe", "duration": 3.0, "text": "", "segments": []}).encode()

    response = deliver(api, awaiting.target, body=empty)

    assert response.json() == {"status": "call_failed"}
    after = state(db, awaiting.call_id)
    assert (after["status"], after["error_reason"], after["callback_state"]) == ("FAILED", "transcription_empty", None)
    assert deliver(api, awaiting.target).json() == {"status": "ignored"}


def test_an_oversized_body_is_413_and_changes_nothing(
    pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore, awaiting: AwaitingCall
) -> None:
    before = state(db, awaiting.call_id)
    app = create_app(api_settings(), db=db, store=store, max_callback_body_bytes=len(BODY) - 1)
    with TestClient(app) as client:
        declared = deliver(Api(client), awaiting.target)
        streamed = client.post(awaiting.target, content=iter([BODY]), headers={"Content-Type": "application/json"})

    assert error(declared) == (413, "payload_too_large")
    assert streamed.status_code == 413
    assert state(db, awaiting.call_id) == before


@pytest.fixture
def rotated(pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore) -> Iterator[Api]:
    """After rotation: SCRYON_WEBHOOK_SECRET="$NEW_SECRET,$OLD_SECRET" (current first)."""
    settings = api_settings(scryon_webhook_secret=f"{WEBHOOK_SECRET},{OLD_WEBHOOK_SECRET}")
    with TestClient(create_app(settings, db=db, store=store)) as client:
        yield Api(client)


def test_rotating_the_secret_fails_no_callback_in_flight(rotated: Api, db: CallDatabase) -> None:
    call_id = rotated.queue_call()
    (claim,) = db.begin_processing([call_id], batch_id=uuid4())
    in_flight = signer(OLD_WEBHOOK_SECRET).ticket(call_id)  # submitted before the rotation
    CallbackQueries(db).await_callback(call_id, attempt=claim.attempt, expires_at=in_flight.expires_at)
    parts = urlsplit(in_flight.url)

    assert deliver(rotated, f"{parts.path}?{parts.query}").json() == {"status": "accepted"}


def test_a_secret_removed_after_the_rollout_no_longer_verifies(
    pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore, awaiting: AwaitingCall
) -> None:
    settings = api_settings(scryon_webhook_secret=OLD_WEBHOOK_SECRET + "-and-a-brand-new-one")
    with TestClient(create_app(settings, db=db, store=store)) as client:
        response = deliver(Api(client), awaiting.target)

    assert response.status_code == 401
    assert state(db, awaiting.call_id)["callback_state"] == "AWAITING"


def test_signed_urls_point_below_the_api_prefix() -> None:
    ticket = signer().ticket(uuid4())

    assert ticket.url.startswith(f"{PUBLIC_BASE_URL}/api/webhooks/lemonfox?")
    assert ticket.expires_at.microsecond == 0
