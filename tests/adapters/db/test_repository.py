from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import psycopg
import pytest

from scryon_dagster.adapters.db.callback_queries import CallbackQueries
from scryon_dagster.adapters.db.records import ClaimRelease, NewCall, ProcessingEvent
from scryon_dagster.adapters.db.repository import (
    CallDatabase,
    DatabaseUnavailableError,
    IllegalTransitionError,
)
from scryon_dagster.domain.analysis import ActionItemDraft, ActionItemPriority, SentimentSummary
from scryon_dagster.domain.analysis.models import Intent, SentimentLabel
from scryon_dagster.domain.calls import ArtifactType, CallStatus, Direction
from scryon_dagster.domain.transcript.models import Role


def _queue_call(db: CallDatabase, user_ref: str = "user-1", **fields: object) -> UUID:
    user = db.ensure_user(user_ref)
    call_id = uuid4()
    db.create_queued_call(
        call_id=call_id,
        user_id=user.id,
        call=NewCall(**fields),  # type: ignore[arg-type]
        temp_audio_key=f"users/{user.id}/calls/{call_id}/temp/audio-a.wav",
        temp_audio_content_type="audio/wav",
        temp_audio_size=10,
    )
    return call_id


def test_create_queued_call_registers_temp_audio(db: CallDatabase) -> None:
    call_id = _queue_call(db, title="t", direction=Direction.INCOMING)

    call = db.get_call(call_id)
    assert call is not None
    assert call.status is CallStatus.QUEUED
    assert call.direction is Direction.INCOMING
    assert set(db.get_artifacts(call_id)) == {ArtifactType.TEMP_AUDIO}


def test_ensure_user_is_idempotent_and_find_accepts_both_ids(db: CallDatabase) -> None:
    first = db.ensure_user("ext-42", display_name="Asha")
    again = db.ensure_user("ext-42")

    assert again.id == first.id
    assert again.display_name == "Asha"
    assert db.find_user("ext-42") == first
    assert db.find_user(str(first.id)) == first
    assert db.find_user("nobody") is None


def test_legal_transition_moves_the_call_writes_an_event_and_bumps_updated_at(db: CallDatabase) -> None:
    call_id = _queue_call(db)
    before = db.get_call(call_id)
    assert before is not None

    assert db.transition(call_id, CallStatus.QUEUED, CallStatus.TRANSCRIBING)

    after = db.get_call(call_id)
    assert after is not None
    assert after.status is CallStatus.TRANSCRIBING
    assert after.updated_at > before.updated_at
    assert [(e.stage, e.status) for e in db.list_events(call_id)] == [("STATUS", "COMPLETED")]


def test_transition_from_an_unexpected_status_is_refused_and_leaves_the_row(db: CallDatabase) -> None:
    call_id = _queue_call(db)
    before = db.get_call(call_id)

    assert not db.transition(call_id, CallStatus.TRANSCRIBING, CallStatus.ANALYZING)

    assert db.get_call(call_id) == before
    assert db.list_events(call_id) == []


def test_illegal_transition_is_rejected_before_touching_the_database(db: CallDatabase) -> None:
    call_id = _queue_call(db)
    before = db.get_call(call_id)

    with pytest.raises(IllegalTransitionError):
        db.transition(call_id, CallStatus.QUEUED, CallStatus.COMPLETED)

    assert db.get_call(call_id) == before


def test_failed_transition_stores_the_error_code(db: CallDatabase) -> None:
    call_id = _queue_call(db)
    db.transition(call_id, CallStatus.QUEUED, CallStatus.TRANSCRIBING)

    assert db.transition(call_id, CallStatus.TRANSCRIBING, CallStatus.FAILED, error_reason="transcription_4xx")

    call = db.get_call(call_id)
    assert call is not None
    assert (call.status, call.error_reason) == (CallStatus.FAILED, "transcription_4xx")
    assert db.list_events(call_id)[-1].error_code == "transcription_4xx"


def test_transition_guarded_by_attempt_ignores_a_requeued_call(db: CallDatabase) -> None:
    call_id = _queue_call(db)
    (claimed,) = db.claim_queued(uuid4(), 10)
    db.transition(call_id, CallStatus.QUEUED, CallStatus.TRANSCRIBING)
    db.transition(call_id, CallStatus.TRANSCRIBING, CallStatus.FAILED, error_reason="stale_job")
    db.transition(call_id, CallStatus.FAILED, CallStatus.QUEUED)
    db.claim_queued(uuid4(), 10)  # second attempt

    assert not db.transition(
        call_id, CallStatus.QUEUED, CallStatus.FAILED, error_reason="run_crashed", attempt=claimed.attempt
    )
    call = db.get_call(call_id)
    assert call is not None
    assert call.status is CallStatus.QUEUED
    assert call.attempt == claimed.attempt + 1


def test_claim_takes_oldest_first_and_never_twice(db: CallDatabase) -> None:
    ids = [_queue_call(db) for _ in range(5)]

    first = db.claim_queued(uuid4(), 3)
    second = db.claim_queued(uuid4(), 3)
    third = db.claim_queued(uuid4(), 3)

    assert [c.call_id for c in first] == ids[:3]
    assert [c.call_id for c in second] == ids[3:]
    assert third == []
    assert all(c.attempt == 1 for c in first + second)


def test_concurrent_claimers_claim_every_call_exactly_once(db: CallDatabase) -> None:
    ids = {_queue_call(db, user_ref=f"user-{i % 3}") for i in range(200)}
    claimed: list[UUID] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def claimer() -> None:
        start.wait()
        while batch := db.claim_queued(uuid4(), 7):
            with lock:
                claimed.extend(c.call_id for c in batch)

    threads = [threading.Thread(target=claimer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(claimed) == len(ids)
    assert set(claimed) == ids


def test_requeue_releases_the_claim_even_through_plain_sql(db: CallDatabase, database_url: str) -> None:
    call_id = _queue_call(db)
    db.claim_queued(uuid4(), 1)
    db.transition(call_id, CallStatus.QUEUED, CallStatus.TRANSCRIBING)
    db.transition(call_id, CallStatus.TRANSCRIBING, CallStatus.FAILED, error_reason="transcription_timeout")

    # the runbook's recipe, verbatim
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE call_records SET status = 'QUEUED', error_reason = NULL WHERE id = %s", (call_id,))

    (again,) = db.claim_queued(uuid4(), 10)
    assert again.call_id == call_id
    assert again.attempt == 2


def _release(db: CallDatabase, batch: UUID, limit: int = 3) -> ClaimRelease:
    return db.release_claim(batch, max_unstarted_pickups=limit, error_reason="launch_failed")


def test_release_claim_returns_queued_calls_to_the_pickup(db: CallDatabase) -> None:
    ids = [_queue_call(db) for _ in range(3)]
    batch = uuid4()
    db.claim_queued(batch, 10)
    db.transition(ids[0], CallStatus.QUEUED, CallStatus.TRANSCRIBING)

    assert db.queued_claims_older_than(datetime.now(UTC) + timedelta(seconds=1)) == [batch]
    assert _release(db, batch) == ClaimRelease(released=2, failed=0)

    assert {c.call_id for c in db.claim_queued(uuid4(), 10)} == set(ids[1:])


def test_a_call_never_started_by_its_last_allowed_pickup_fails_with_an_event(db: CallDatabase) -> None:
    call_id = _queue_call(db)
    for _ in range(2):
        batch = uuid4()
        db.claim_queued(batch, 10)
        assert _release(db, batch) == ClaimRelease(released=1, failed=0)
    batch = uuid4()
    db.claim_queued(batch, 10)

    assert _release(db, batch) == ClaimRelease(released=0, failed=1)

    call = db.get_call(call_id)
    assert call is not None
    assert (call.status, call.error_reason) == (CallStatus.FAILED, "launch_failed")
    assert db.claim_queued(uuid4(), 10) == []
    last = db.list_events(call_id)[-1]
    assert (last.stage, last.status, last.error_code) == ("STATUS", "FAILED", "launch_failed")


def test_starting_or_requeueing_a_call_restarts_its_pickup_count(db: CallDatabase, database_url: str) -> None:
    call_id = _queue_call(db)
    batch = uuid4()
    db.claim_queued(batch, 10)
    _release(db, batch, limit=2)  # one pickup left
    batch = uuid4()
    db.claim_queued(batch, 10)
    db.transition(call_id, CallStatus.QUEUED, CallStatus.TRANSCRIBING)  # started: the count restarts
    db.transition(call_id, CallStatus.TRANSCRIBING, CallStatus.FAILED, error_reason="transcription_timeout")
    with psycopg.connect(database_url) as conn:  # the runbook's re-queue
        conn.execute("UPDATE call_records SET status = 'QUEUED', error_reason = NULL WHERE id = %s", (call_id,))

    batch = uuid4()
    db.claim_queued(batch, 10)
    assert _release(db, batch, limit=2) == ClaimRelease(released=1, failed=0)


def test_a_delivered_callback_never_resumed_goes_back_and_fails_at_the_limit(
    db: CallDatabase, database_url: str
) -> None:
    call_id = _queue_call(db)
    db.claim_queued(uuid4(), 10)
    db.transition(call_id, CallStatus.QUEUED, CallStatus.TRANSCRIBING)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE call_records SET callback_state = 'RECEIVED', callback_received_at = now(), claim_id = NULL "
            "WHERE id = %s",
            (call_id,),
        )
    callbacks = CallbackQueries(db)
    batch = uuid4()
    assert [c.call_id for c in callbacks.claim_received(batch, 10)] == [call_id]
    assert _release(db, batch, limit=2) == ClaimRelease(released=1, failed=0)
    batch = uuid4()
    assert [c.call_id for c in callbacks.claim_received(batch, 10)] == [call_id]

    assert _release(db, batch, limit=2) == ClaimRelease(released=0, failed=1)
    call = db.get_call(call_id)
    assert call is not None
    assert (call.status, call.error_reason) == (CallStatus.FAILED, "launch_failed")


def test_upsert_artifact_replaces_in_place(db: CallDatabase) -> None:
    call_id = _queue_call(db)
    db.upsert_artifact(
        call_id, ArtifactType.RAW_TRANSCRIPT_JSON, storage_key="k", content_type="application/json", byte_size=1
    )
    db.upsert_artifact(
        call_id,
        ArtifactType.RAW_TRANSCRIPT_JSON,
        storage_key="k",
        content_type="application/json",
        byte_size=99,
        schema_version=2,
    )

    artifacts = db.get_artifacts(call_id)
    assert len(artifacts) == 2
    raw = artifacts[ArtifactType.RAW_TRANSCRIPT_JSON]
    assert (raw.byte_size, raw.schema_version) == (99, 2)
    assert db.delete_artifact(call_id, ArtifactType.RAW_TRANSCRIPT_JSON)
    assert not db.delete_artifact(call_id, ArtifactType.RAW_TRANSCRIPT_JSON)


def test_events_and_feature_flags_round_trip(db: CallDatabase) -> None:
    call_id = _queue_call(db)
    call = db.get_call(call_id)
    assert call is not None
    db.record_events(
        [
            ProcessingEvent(call_id, call.user_id, "TRANSCRIBED", "STARTED", provider="lemonfox"),
            ProcessingEvent(call_id, call.user_id, "TRANSCRIBED", "FAILED", "lemonfox", 12, "transcription_4xx"),
        ]
    )
    assert [e.status for e in db.list_events(call_id)] == ["STARTED", "FAILED"]

    db.set_feature_flag("PYANNOTE_ENABLED", False, updated_by="test")
    db.set_feature_flag("PYANNOTE_ENABLED", True, updated_by="test")
    assert db.get_feature_flags() == {"PYANNOTE_ENABLED": True}


def test_deleting_a_call_cascades_to_its_children(db: CallDatabase, database_url: str) -> None:
    call_id = _queue_call(db)
    call = db.get_call(call_id)
    assert call is not None
    db.record_events([ProcessingEvent(call_id, call.user_id, "TRANSCRIBED", "STARTED")])

    with psycopg.connect(database_url) as conn:
        conn.execute("DELETE FROM call_records WHERE id = %s", (call_id,))
        leftovers = conn.execute(
            "SELECT (SELECT count(*) FROM call_artifacts) + (SELECT count(*) FROM call_processing_events)"
        ).fetchone()
    assert leftovers == (0,)


def test_unreachable_database_raises_a_clear_error() -> None:
    with (
        CallDatabase("postgresql://nobody@127.0.0.1:1/none", timeout_seconds=1) as unreachable,
        pytest.raises(DatabaseUnavailableError, match="unreachable"),
    ):
        unreachable.check()


def _draft(title: str) -> ActionItemDraft:
    return ActionItemDraft(
        title=title,
        description=None,
        due_date=None,
        priority=ActionItemPriority.HIGH,
        intent=Intent.EMAIL,
        intent_metadata_json={"subject": "offer"},
        owner_speaker_id="spk_2",
        owner_speaker_label="Speaker 2",
        owner_display_name=None,
        owner_role=Role.CONTACT,
        source_segment_ids_json=["seg_0003"],
        source_text=None,
    )


def _sentiment(overall: SentimentLabel) -> SentimentSummary:
    return SentimentSummary(
        sentiment_overall=overall,
        user_sentiment=None,
        contact_sentiment=None,
        tone_overall=None,
        tone_formality=None,
        tone_energy=None,
        tone_pace=None,
    )


def test_ai_outputs_are_replaced_on_reprocess_and_manual_items_kept(db: CallDatabase) -> None:
    call_id = _queue_call(db)
    call = db.get_call(call_id)
    assert call is not None
    with db.transaction() as cur:
        cur.execute(
            "INSERT INTO action_items (call_record_id, title, source) VALUES (%s, 'written by the user', 'MANUAL')",
            (call_id,),
        )

    for overall in (SentimentLabel.NEGATIVE, SentimentLabel.POSITIVE):  # a reprocess writes the same call again
        db.replace_ai_outputs(
            call_id,
            call.user_id,
            recorded_at=None,
            action_items=[_draft("send the offer"), _draft("call back")],
            sentiment=_sentiment(overall),
        )

    items = db.list_action_items(call_id)
    assert sorted((item["source"], item["title"]) for item in items) == [
        ("AI", "call back"),
        ("AI", "send the offer"),
        ("MANUAL", "written by the user"),
    ]
    ai = next(item for item in items if item["title"] == "send the offer")
    assert (ai["priority"], ai["intent"], ai["owner_role"]) == ("HIGH", "email", "CONTACT")
    assert ai["source_segment_ids_json"] == ["seg_0003"]
    summary = db.get_sentiment_summary(call_id)
    assert summary is not None
    assert summary["sentiment_overall"] == "positive"

    db.replace_ai_outputs(call_id, call.user_id, recorded_at=None, action_items=[], sentiment=None)
    assert [item["source"] for item in db.list_action_items(call_id)] == ["MANUAL"]
    assert db.get_sentiment_summary(call_id) is None
