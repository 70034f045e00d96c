"""TEMP_AUDIO past its TTL and objects whose call is gone: deleted, and nothing else ever is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import S3ObjectStore
from scryon_dagster.domain.calls import ArtifactType, CallStatus
from scryon_dagster.domain.storage_keys import artifact_key
from scryon_dagster.pipeline.maintenance import MaintenanceError, reap_orphan_artifacts, sweep_temp_audio
from tests.maintenance.conftest import ARTIFACT_BYTES, AUDIO, Calls, ago

TTL = timedelta(hours=24)
DERIVED = (ArtifactType.RAW_TRANSCRIPT_JSON, ArtifactType.NORMALIZED_TRANSCRIPT_JSON, ArtifactType.ANALYSIS_JSON)


def test_temp_audio_past_its_ttl_is_deleted_object_then_row(calls: Calls, db: CallDatabase) -> None:
    expired = calls.create(status=CallStatus.COMPLETED, artifacts=DERIVED)
    calls.rewind_artifact(expired.id, ArtifactType.TEMP_AUDIO, ago(hours=25))
    expired_key = calls.key(expired, ArtifactType.TEMP_AUDIO)
    already_gone = calls.create(status=CallStatus.COMPLETED)
    calls.rewind_artifact(already_gone.id, ArtifactType.TEMP_AUDIO, ago(hours=30))
    calls.store.delete(calls.key(already_gone, ArtifactType.TEMP_AUDIO))
    fresh = calls.create()
    calls.rewind_artifact(fresh.id, ArtifactType.TEMP_AUDIO, ago(hours=23))
    keys_before = calls.object_keys()

    report = sweep_temp_audio(db, calls.store, now=datetime.now(UTC), ttl=TTL)

    assert sorted(report.deleted) == sorted([expired.id, already_gone.id])
    assert report.missing_objects == 1
    assert calls.object_keys() == keys_before - {expired_key}
    assert set(db.get_artifacts(expired.id)) == set(DERIVED)  # only the audio goes
    assert set(db.get_artifacts(fresh.id)) == {ArtifactType.TEMP_AUDIO}
    assert calls.status(expired.id) == (CallStatus.COMPLETED, None)

    again = sweep_temp_audio(db, calls.store, now=datetime.now(UTC), ttl=TTL)
    assert (again.deleted, again.missing_objects) == ([], 0)
    assert calls.object_keys() == keys_before - {expired_key}


@pytest.mark.parametrize("ttl", [timedelta(hours=-1), timedelta(0)])
def test_a_bad_ttl_is_refused_before_any_change(calls: Calls, db: CallDatabase, ttl: timedelta) -> None:
    call = calls.create()
    keys_before = calls.object_keys()

    with pytest.raises(MaintenanceError):
        sweep_temp_audio(db, calls.store, now=datetime.now(UTC), ttl=ttl)

    assert calls.object_keys() == keys_before
    assert ArtifactType.TEMP_AUDIO in db.get_artifacts(call.id)


def test_the_reaper_deletes_a_deleted_calls_objects_and_nothing_else(calls: Calls, db: CallDatabase) -> None:
    gone = calls.create(status=CallStatus.COMPLETED, artifacts=DERIVED)
    gone_keys = {calls.key(gone, kind) for kind in (ArtifactType.TEMP_AUDIO, *DERIVED)}
    calls.sql("DELETE FROM call_records WHERE id = %s", gone.id)  # the runbook's force-delete in SQL
    live = calls.create(status=CallStatus.COMPLETED, artifacts=DERIVED)
    calls.create()  # a QUEUED call: live, its audio stays
    # an upload whose intake died between writing the object and inserting the row
    abandoned_call = uuid4()
    upload_key = artifact_key(live.user_id, abandoned_call, ArtifactType.TEMP_AUDIO, "m4a")
    calls.store.put_bytes(upload_key, AUDIO, "audio/mp4")
    outside_layout = ["users/not-a-uuid/calls/x/file.json", "exports/report.json", f"users/{live.user_id}/profile.json"]
    for key in outside_layout:
        calls.store.put_bytes(key, ARTIFACT_BYTES, "application/json")
    keys_before = calls.object_keys()
    later = datetime.now(UTC) + timedelta(hours=2)  # every object is now two hours old

    dry = reap_orphan_artifacts(db, calls.store, now=later, min_age=timedelta(hours=1), dry_run=True)
    assert calls.object_keys() == keys_before
    report = reap_orphan_artifacts(db, calls.store, now=later, min_age=timedelta(hours=1))

    assert dry == report
    assert set(report.calls) == {gone.id, abandoned_call}
    assert report.objects_deleted == len(gone_keys) + 1
    assert report.bytes_deleted == len(AUDIO) * 2 + len(ARTIFACT_BYTES) * len(DERIVED)
    assert calls.object_keys() == keys_before - gone_keys - {upload_key}
    again = reap_orphan_artifacts(db, calls.store, now=later, min_age=timedelta(hours=1))
    assert (again.calls, again.objects_deleted) == ([], 0)


def test_the_reaper_leaves_a_fresh_upload_without_a_row_alone(calls: Calls, db: CallDatabase) -> None:
    live = calls.create()
    # intake writes the object before the row: this upload's row does not exist yet
    upload_key = artifact_key(live.user_id, uuid4(), ArtifactType.TEMP_AUDIO, "m4a")
    calls.store.put_bytes(upload_key, AUDIO, "audio/mp4")

    report = reap_orphan_artifacts(db, calls.store, now=datetime.now(UTC), min_age=timedelta(hours=1))

    assert (report.calls, report.objects_deleted) == ([], 0)
    assert upload_key in calls.object_keys()


@pytest.mark.parametrize("min_age", [timedelta(hours=-1), timedelta(0)])
def test_a_bad_min_age_is_refused(calls: Calls, db: CallDatabase, bucket: S3ObjectStore, min_age: timedelta) -> None:
    gone = calls.create()
    calls.sql("DELETE FROM call_records WHERE id = %s", gone.id)
    keys_before = calls.object_keys()

    with pytest.raises(MaintenanceError):
        reap_orphan_artifacts(db, bucket, now=datetime.now(UTC) + timedelta(days=1), min_age=min_age)

    assert calls.object_keys() == keys_before
