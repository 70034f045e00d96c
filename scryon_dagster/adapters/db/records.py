"""Typed rows returned by the data-access layer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from scryon_dagster.domain.calls import ArtifactType, CallStatus, Direction


@dataclass(frozen=True)
class CallRecord:
    id: UUID
    user_id: UUID
    title: str | None
    notes: str | None
    contact_name: str | None
    contact_id: str | None
    phone_number: str | None
    organization: str | None
    direction: Direction
    recorded_at: datetime | None
    duration_seconds: float | None
    status: CallStatus
    error_reason: str | None
    claim_id: UUID | None
    claimed_at: datetime | None
    attempt: int
    created_at: datetime
    updated_at: datetime
    retry_count: int = 0
    """Automatic retries used in this processing cycle."""
    retry_after: datetime | None = None
    """A QUEUED call waiting for its retry is not picked up before this."""
    cycle_started_at: datetime | None = None
    """When this processing cycle began (intake, or leaving COMPLETED/FAILED): outputs stored since
    then are this cycle's, and a retry reuses them instead of paying for them again."""
    cycle_assets: list[str] | None = None
    """The assets this cycle rebuilds (a re-derivation started by hand); None means every asset."""


@dataclass(frozen=True)
class NewCall:
    """What intake knows about a call before it is queued."""

    title: str | None = None
    notes: str | None = None
    contact_name: str | None = None
    contact_id: str | None = None
    phone_number: str | None = None
    organization: str | None = None
    direction: Direction = Direction.UNKNOWN
    recorded_at: datetime | None = None
    duration_seconds: float | None = None


@dataclass(frozen=True)
class UserRecord:
    id: UUID
    external_user_id: str
    email: str | None
    display_name: str | None


@dataclass(frozen=True)
class ArtifactRecord:
    call_id: UUID
    artifact_type: ArtifactType
    storage_key: str
    content_type: str
    byte_size: int
    schema_version: int | None
    created_at: datetime


@dataclass(frozen=True)
class ClaimedCall:
    call_id: UUID
    user_id: UUID
    attempt: int
    retry_count: int = 0
    """Automatic retries this processing cycle has used so far."""


@dataclass(frozen=True)
class ClaimRelease:
    """What giving back a batch's unstarted calls did: how many went back to the pickup, and how many
    had used their last pickup and failed instead."""

    released: int
    failed: int


@dataclass(frozen=True)
class VoiceProfile:
    user_id: UUID
    provider: str
    model: str | None
    embedding_json: object
    """The provider's opaque blob: never decoded, never logged, never served."""
    consent_version: str | None = None
    sample_duration_seconds: float | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class ProcessingEvent:
    call_id: UUID
    user_id: UUID | None
    stage: str
    status: str
    provider: str | None = None
    duration_ms: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class LlmUsage:
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    estimated_cost_usd: float
    request_id: str | None
