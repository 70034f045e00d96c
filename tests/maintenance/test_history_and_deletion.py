"""Event and idempotency-key pruning, old finished calls, call deletion and the normalization backfill's
selection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from scryon_dagster.adapters.db.api_queries import ApiQueries
from scryon_dagster.adapters.db.records import LlmUsage, ProcessingEvent
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.domain.analysis import ActionItemDraft, SentimentSummary
from scryon_dagster.domain.calls import ArtifactType, CallStatus
from scryon_dagster.pipeline.maintenance import (
    MaintenanceError,
    calls_needing_renormalization,
    delete_calls,
    finished_calls_before,
    prune_events,
    prune_idempotency_keys,
)
from tests.maintenance.conftest import Calls, ago

ALL_DERIVED = (
    ArtifactType.DIARIZATION_JSON,
    ArtifactType.RAW_TRANSCRIPT_JSON,
    ArtifactType.NORMALIZED_TRANSCRIPT_JSON,
    ArtifactType.ANALYSIS_JSON,
)

ACTION_ITEM = ActionItemDraft(
    title="Send the quote",
    description=None,
    due_date=None,
    priority=None,
    intent=None,
    intent_metadata_json=None,
    owner_speaker_id=None,
    owner_speaker_label=None,
    owner_display_name=None,
    owner_role=None,
    source_segment_ids_json=[],
    source_text=None,
)
NEUTRAL_SENTIMENT = SentimentSummary(
    sentiment_overall=None,
    user_sentiment=None,
    contact_sentiment=None,
    tone_overall=None,
    tone_formality=None,
    tone_energy=None,
    tone_pace=None,
)


def test_events_past_retention_are_pruned_and_recent_ones_kept(calls: Calls, db: CallDatabase) -> None:
    call = calls.create()
    db.record_events([ProcessingEvent(call.id, call.user_id, "TRANSCRIBED", "COMPLETED") for _ in range(3)])
    calls.sql(
        "UPDATE call_processing_events SET created_at = %s WHERE id IN "
        "(SELECT id FROM call_processing_events WHERE call_id = %s LIMIT 2)",
        ago(days=31),
        call.id,
    )

    assert prune_events(db, now=datetime.now(UTC), retention=timedelta(days=30)) == 2
    assert len(db.list_events(call.id)) == 1
    assert prune_events(db, now=datetime.now(UTC), retention=timedelta(days=30)) == 0
    with pytest.raises(MaintenanceError):
        prune_events(db, now=datetime.now(UTC), retention=timedelta(days=-30))
    assert len(db.list_events(call.id)) == 1


def test_finished_calls_before_lists_old_completed_and_failed_calls_only(calls: Calls, db: CallDatabase) -> None:
    old = calls.create(status=CallStatus.COMPLETED)
    calls.rewind(old.id, updated_at=ago(days=41))
    old_failed = calls.create(status=CallStatus.FAILED)
    calls.rewind(old_failed.id, updated_at=ago(days=40))
    old_queued = calls.create(status=CallStatus.QUEUED)
    calls.rewind(old_queued.id, updated_at=ago(days=40))
    calls.create(status=CallStatus.COMPLETED)
    calls.create(status=CallStatus.FAILED)

    assert finished_calls_before(db, ago(days=30)) == [old.id, old_failed.id]
    with pytest.raises(MaintenanceError):
        finished_calls_before(db, datetime.now() - timedelta(days=30))  # naive on purpose


def test_idempotency_keys_are_kept_24_hours(calls: Calls, db: CallDatabase) -> None:
    call = calls.create(status=CallStatus.COMPLETED)
    queries = ApiQueries(db)
    for key, age in (("retry-old", ago(hours=25)), ("retry-fresh", ago(hours=23))):
        queries.remember_idempotency_key(call.user_id, key, call.id)
        calls.sql("UPDATE upload_idempotency_keys SET created_at = %s WHERE idempotency_key = %s", age, key)

    assert prune_idempotency_keys(db, now=datetime.now(UTC), retention=timedelta(hours=24)) == 1
    assert queries.call_for_idempotency_key(call.user_id, "retry-old") is None
    assert queries.call_for_idempotency_key(call.user_id, "retry-fresh") == call.id
    assert prune_idempotency_keys(db, now=datetime.now(UTC), retention=timedelta(hours=24)) == 0
    with pytest.raises(MaintenanceError):
        prune_idempotency_keys(db, now=datetime.now(UTC), retention=timedelta(0))


def test_deleting_a_call_removes_its_objects_then_its_row_with_every_child(calls: Calls, db: CallDatabase) -> None:
    doomed = calls.create(status=CallStatus.COMPLETED, artifacts=ALL_DERIVED)
    db.record_events([ProcessingEvent(doomed.id, doomed.user_id, "ANALYZED", "COMPLETED")])
    db.replace_ai_outputs(
        doomed.id,
        doomed.user_id,
        recorded_at=None,
        action_items=[ACTION_ITEM],
        sentiment=NEUTRAL_SENTIMENT,
    )
    db.record_llm_usage(doomed.id, LlmUsage("gpt-4o-mini", 4000, 900, 0, 0.0012, None))
    kept = calls.create(status=CallStatus.COMPLETED, artifacts=ALL_DERIVED)
    kept_keys = {key for key in calls.object_keys() if str(kept.id) in key}
    unknown = uuid4()

    report = delete_calls(db, calls.store, [doomed.id, unknown, doomed.id])

    assert (report.deleted, report.unknown, report.objects_deleted) == ([doomed.id], [unknown], 5)
    assert calls.object_keys() == kept_keys
    assert db.get_call(doomed.id) is None
    for table, column in (
        ("call_artifacts", "call_id"),
        ("call_processing_events", "call_id"),
        ("action_items", "call_record_id"),
        ("call_sentiment_summary", "call_record_id"),
        ("call_llm_usage", "call_id"),
    ):
        assert calls.sql(f"SELECT count(*) FROM {table} WHERE {column} = %s", doomed.id) == [(0,)], table
    assert set(db.get_artifacts(kept.id)) == {ArtifactType.TEMP_AUDIO, *ALL_DERIVED}

    again = delete_calls(db, calls.store, [doomed.id, unknown])
    assert (again.deleted, again.unknown, again.objects_deleted) == ([], [doomed.id, unknown], 0)
    assert calls.object_keys() == kept_keys


def test_the_backfill_selects_completed_calls_normalized_before_the_version(calls: Calls, db: CallDatabase) -> None:
    raw_and_normalized = (ArtifactType.RAW_TRANSCRIPT_JSON, ArtifactType.NORMALIZED_TRANSCRIPT_JSON)
    older = calls.create(status=CallStatus.COMPLETED, artifacts=raw_and_normalized, normalization_version=3)
    unversioned = calls.create(status=CallStatus.COMPLETED, artifacts=raw_and_normalized)
    never_normalized = calls.create(status=CallStatus.COMPLETED, artifacts=(ArtifactType.RAW_TRANSCRIPT_JSON,))
    calls.create(status=CallStatus.COMPLETED, artifacts=raw_and_normalized, normalization_version=4)
    calls.create(status=CallStatus.COMPLETED, artifacts=(ArtifactType.NORMALIZED_TRANSCRIPT_JSON,))  # no raw
    calls.create(status=CallStatus.FAILED, artifacts=raw_and_normalized, normalization_version=3)
    too_old = calls.create(status=CallStatus.COMPLETED, artifacts=raw_and_normalized, normalization_version=3)
    calls.rewind(too_old.id, created_at=ago(days=8))

    selected = calls_needing_renormalization(db, since=ago(days=7), version=4)

    assert selected == [older.id, unversioned.id, never_normalized.id]
    with pytest.raises(MaintenanceError):
        calls_needing_renormalization(db, since=ago(days=7), version=0)
