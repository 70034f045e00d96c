"""The column lists of ``call_records`` and ``call_artifacts`` and their rows as typed records, shared by
the query classes of this package."""

from __future__ import annotations

from typing import Any

from scryon_dagster.adapters.db.records import ArtifactRecord, CallRecord, ClaimedCall
from scryon_dagster.domain.calls import ArtifactType, CallStatus, Direction

CALL_COLUMNS = (
    "id, user_id, title, notes, contact_name, contact_id, phone_number, organization, direction, "
    "recorded_at, duration_seconds, status, error_reason, claim_id, claimed_at, attempt, created_at, updated_at, "
    "retry_count, retry_after, cycle_started_at, cycle_assets"
)
ARTIFACT_COLUMNS = "call_id, artifact_type, storage_key, content_type, byte_size, schema_version, created_at"


def call_record(row: dict[str, Any]) -> CallRecord:
    return CallRecord(**{**row, "status": CallStatus(row["status"]), "direction": Direction(row["direction"])})


def artifact_record(row: dict[str, Any]) -> ArtifactRecord:
    return ArtifactRecord(**{**row, "artifact_type": ArtifactType(row["artifact_type"])})


def claimed_call(row: dict[str, Any]) -> ClaimedCall:
    return ClaimedCall(
        call_id=row["id"], user_id=row["user_id"], attempt=row["attempt"], retry_count=row.get("retry_count", 0)
    )
