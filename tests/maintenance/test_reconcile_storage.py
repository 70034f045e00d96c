"""Reconcile after a restore: every way the database and the bucket can disagree, classified."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.domain.calls import ArtifactType, CallStatus
from scryon_dagster.domain.storage_keys import artifact_key
from scryon_dagster.pipeline.maintenance import (
    MaintenanceError,
    ReconcileReport,
    forget_missing_artifacts,
    reconcile_storage,
)
from tests.maintenance.conftest import ARTIFACT_BYTES, Calls, ago

TTL = timedelta(hours=24)
DERIVED = (
    ArtifactType.DIARIZATION_JSON,
    ArtifactType.RAW_TRANSCRIPT_JSON,
    ArtifactType.NORMALIZED_TRANSCRIPT_JSON,
    ArtifactType.ANALYSIS_JSON,
)
RAW = ArtifactType.RAW_TRANSCRIPT_JSON
NORMALIZED = ArtifactType.NORMALIZED_TRANSCRIPT_JSON
DIARIZATION = ArtifactType.DIARIZATION_JSON


def reconcile(db: CallDatabase, calls: Calls) -> ReconcileReport:
    return reconcile_storage(db, calls.store, now=datetime.now(UTC) + timedelta(seconds=1), ttl=TTL)


def test_every_disagreement_is_found_and_classified(calls: Calls, db: CallDatabase) -> None:
    def lose(call_id: UUID, *kinds: ArtifactType) -> None:
        for kind in kinds:
            calls.store.delete(db.get_artifacts(call_id)[kind].storage_key)

    healthy = calls.create(status=CallStatus.COMPLETED, artifacts=DERIVED)
    transcript_lost = calls.create(status=CallStatus.COMPLETED, audio=None, artifacts=DERIVED)
    lose(transcript_lost.id, NORMALIZED, ArtifactType.ANALYSIS_JSON)
    raw_lost_audio_kept = calls.create(status=CallStatus.COMPLETED, artifacts=DERIVED)
    lose(raw_lost_audio_kept.id, RAW)
    raw_lost_audio_gone = calls.create(status=CallStatus.COMPLETED, audio=None, artifacts=DERIVED)
    lose(raw_lost_audio_gone.id, RAW)
    diarization_and_transcript_lost = calls.create(status=CallStatus.COMPLETED, audio=None, artifacts=DERIVED)
    lose(diarization_and_transcript_lost.id, DIARIZATION, NORMALIZED)
    audio_lost_too = calls.create(status=CallStatus.COMPLETED, artifacts=DERIVED)
    lose(audio_lost_too.id, ArtifactType.TEMP_AUDIO, RAW)
    failed_call = calls.create(status=CallStatus.FAILED, artifacts=(RAW,))
    lose(failed_call.id, RAW)
    expired = calls.create(status=CallStatus.COMPLETED, artifacts=DERIVED)
    calls.rewind_artifact(expired.id, ArtifactType.TEMP_AUDIO, ago(hours=25))
    deleted = calls.create(status=CallStatus.COMPLETED, artifacts=(RAW,))
    orphan_keys = {calls.key(deleted, ArtifactType.TEMP_AUDIO), calls.key(deleted, RAW)}
    reference_era_upload = f"users/{deleted.user_id}/calls/{deleted.id}/temp/audio-Call with Dana Whitfield.m4a"
    calls.store.put_bytes(reference_era_upload, ARTIFACT_BYTES, "audio/mp4")
    calls.sql("DELETE FROM call_records WHERE id = %s", deleted.id)
    untracked_key = artifact_key(healthy.user_id, healthy.id, ArtifactType.TEMP_AUDIO, "wav")
    calls.store.put_bytes(untracked_key, ARTIFACT_BYTES, "audio/wav")
    for key in ("exports/summary.json", "users/not-a-uuid/calls/x/file.json"):
        calls.store.put_bytes(key, ARTIFACT_BYTES, "application/json")
    keys_before = calls.object_keys()

    report = reconcile(db, calls)

    assert sorted(report.missing_artifacts) == sorted(
        [
            (transcript_lost.id, ArtifactType.ANALYSIS_JSON),
            (transcript_lost.id, NORMALIZED),
            (raw_lost_audio_kept.id, RAW),
            (raw_lost_audio_gone.id, RAW),
            (diarization_and_transcript_lost.id, DIARIZATION),
            (diarization_and_transcript_lost.id, NORMALIZED),
            (audio_lost_too.id, ArtifactType.TEMP_AUDIO),
            (audio_lost_too.id, RAW),
            (failed_call.id, RAW),
        ]
    )
    # keys of the layout are UUIDs and fixed names; anything else may hold a name and is masked
    masked_upload = f"users/{deleted.user_id}/calls/{deleted.id}/temp/<name>"
    assert sorted(report.orphan_objects) == sorted([*orphan_keys, masked_upload])
    assert report.untracked_objects == [untracked_key]
    assert report.expired_temp_audio == [expired.id]
    assert sorted(report.rederivable) == sorted([transcript_lost.id, diarization_and_transcript_lost.id])
    assert report.reprocessable == [raw_lost_audio_kept.id]
    assert sorted(report.underivable) == sorted(
        [raw_lost_audio_gone.id, diarization_and_transcript_lost.id, audio_lost_too.id]
    )
    assert calls.object_keys() == keys_before  # a report changes nothing
    assert len(db.get_artifacts(transcript_lost.id)) == len(DERIVED)

    assert forget_missing_artifacts(db, report.missing_artifacts) == len(report.missing_artifacts)
    assert set(db.get_artifacts(transcript_lost.id)) == {DIARIZATION, RAW}
    after = reconcile(db, calls)
    assert (after.missing_artifacts, after.rederivable, after.reprocessable, after.underivable) == ([], [], [], [])
    assert forget_missing_artifacts(db, report.missing_artifacts) == 0


def test_a_clean_store_reconciles_to_nothing(calls: Calls, db: CallDatabase) -> None:
    for _ in range(3):
        calls.create(status=CallStatus.COMPLETED, artifacts=DERIVED)
    calls.create()

    report = reconcile(db, calls)

    assert report == ReconcileReport([], [], [], [], [], [], [])


def test_an_object_written_after_the_reconcile_started_is_not_reported_untracked(
    calls: Calls, db: CallDatabase
) -> None:
    call = calls.create(status=CallStatus.COMPLETED)
    started = datetime.now(UTC) - timedelta(seconds=5)
    # the pipeline writes an artifact's object, then its row: this one is between the two
    key = artifact_key(call.user_id, call.id, RAW)
    calls.store.put_bytes(key, ARTIFACT_BYTES, "application/json")

    assert reconcile_storage(db, calls.store, now=started, ttl=TTL).untracked_objects == []
    assert reconcile(db, calls).untracked_objects == [key]  # had it been there before the start


@pytest.mark.parametrize("ttl", [timedelta(hours=-24), timedelta(0)])
def test_a_bad_ttl_is_refused(calls: Calls, db: CallDatabase, ttl: timedelta) -> None:
    with pytest.raises(MaintenanceError):
        reconcile_storage(db, calls.store, now=datetime.now(UTC), ttl=ttl)


def test_unknown_rows_are_forgotten_as_nothing(db: CallDatabase) -> None:
    assert forget_missing_artifacts(db, [(uuid4(), RAW)]) == 0
    assert forget_missing_artifacts(db, []) == 0
