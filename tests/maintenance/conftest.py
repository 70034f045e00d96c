"""Calls, objects and clocks for the maintenance tests: real PostgreSQL and the S3-compatible server.

Rows are created through the repository as intake and the pipeline create them; the tests then move
time by rewriting timestamps in SQL (with the touch trigger held off, which would stamp ``now()``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import sql

from scryon_dagster.adapters.db.records import CallRecord, NewCall
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import S3ObjectStore
from scryon_dagster.domain.calls import ArtifactType, CallStatus
from scryon_dagster.domain.storage_keys import artifact_key
from tests.fixtures.s3 import S3_TEST_ACCESS_KEY, S3_TEST_REGION, S3_TEST_SECRET_KEY

AUDIO = b"\x00" * 64_000
ARTIFACT_BYTES = b'{"stored": true}'


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


@pytest.fixture
def bucket(s3_endpoint_url: str, s3_bucket: str) -> S3ObjectStore:
    return S3ObjectStore(
        s3_bucket,
        endpoint_url=s3_endpoint_url,
        region=S3_TEST_REGION,
        access_key_id=S3_TEST_ACCESS_KEY,
        secret_access_key=S3_TEST_SECRET_KEY,
    )


@dataclass
class Calls:
    """Creates calls with their rows and objects, and rewrites their timestamps."""

    db: CallDatabase
    store: S3ObjectStore
    database_url: str

    def create(
        self,
        *,
        user: str = "user-a",
        status: CallStatus = CallStatus.QUEUED,
        duration_seconds: float | None = 60.0,
        audio: bytes | None = AUDIO,
        audio_content_type: str = "audio/mp4",
        artifacts: tuple[ArtifactType, ...] = (),
        normalization_version: int | None = None,
    ) -> CallRecord:
        """A call as intake creates it (TEMP_AUDIO object, then the QUEUED row), with the given derived
        artifacts stored and then moved to ``status``. ``audio=None``: the TEMP_AUDIO row and object are gone."""
        user_id = self.db.ensure_user(user).id
        call_id = uuid4()
        audio_key = artifact_key(user_id, call_id, ArtifactType.TEMP_AUDIO, "m4a")
        self.store.put_bytes(audio_key, audio or b"", audio_content_type)
        self.db.create_queued_call(
            call_id=call_id,
            user_id=user_id,
            call=NewCall(duration_seconds=duration_seconds),
            temp_audio_key=audio_key,
            temp_audio_content_type=audio_content_type,
            temp_audio_size=len(audio or b""),
        )
        if audio is None:
            self.store.delete(audio_key)
            self.db.delete_artifact(call_id, ArtifactType.TEMP_AUDIO)
        for artifact_type in artifacts:
            key = artifact_key(user_id, call_id, artifact_type)
            size = self.store.put_bytes(key, ARTIFACT_BYTES, "application/json")
            version = normalization_version if artifact_type is ArtifactType.NORMALIZED_TRANSCRIPT_JSON else None
            self.db.upsert_artifact(
                call_id,
                artifact_type,
                storage_key=key,
                content_type="application/json",
                byte_size=size,
                schema_version=version,
            )
        if status is not CallStatus.QUEUED:
            self.sql("UPDATE call_records SET status = %s WHERE id = %s", status.value, call_id)
        call = self.db.get_call(call_id)
        assert call is not None
        return call

    def rewind(self, call_id: UUID, **columns: datetime | UUID | None) -> None:
        """Set call_records timestamps (and claim columns) directly: the touch trigger would stamp now()."""
        assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in columns)
        with psycopg.connect(self.database_url) as conn:
            conn.execute("ALTER TABLE call_records DISABLE TRIGGER call_records_touch")
            conn.execute(
                sql.SQL("UPDATE call_records SET {} WHERE id = %s").format(assignments), [*columns.values(), call_id]
            )
            conn.execute("ALTER TABLE call_records ENABLE TRIGGER call_records_touch")

    def rewind_artifact(self, call_id: UUID, artifact_type: ArtifactType, created_at: datetime) -> None:
        self.sql(
            "UPDATE call_artifacts SET created_at = %s WHERE call_id = %s AND artifact_type = %s",
            created_at,
            call_id,
            artifact_type.value,
        )

    def key(self, call: CallRecord, artifact_type: ArtifactType) -> str:
        return self.db.get_artifacts(call.id)[artifact_type].storage_key

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def status(self, call_id: UUID) -> tuple[CallStatus, str | None]:
        call = self.db.get_call(call_id)
        assert call is not None
        return call.status, call.error_reason

    def object_keys(self) -> set[str]:
        return {info.key for info in self.store.list_objects()}


@pytest.fixture
def calls(db: CallDatabase, bucket: S3ObjectStore, database_url: str) -> Calls:
    return Calls(db, bucket, database_url)
