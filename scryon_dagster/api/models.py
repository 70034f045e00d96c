"""Request and response bodies of the HTTP API (camelCase on the wire, as in the reference)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from scryon_dagster.adapters.db.api_queries import CallSummary
from scryon_dagster.adapters.db.records import CallRecord, NewCall, VoiceProfile
from scryon_dagster.domain.calls import CallStatus, Direction
from scryon_dagster.pipeline.callbacks import DeliveryOutcome

MAX_PAGE_SIZE = 100
MAX_IDS_PER_REQUEST = 100


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


ShortText = Annotated[str, Field(max_length=200)]


class CallMetadata(BaseModel):
    """The ``metadata`` part of an upload; every field optional, unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True)

    title: Annotated[str, Field(max_length=500)] | None = None
    notes: Annotated[str, Field(max_length=10_000)] | None = None
    contact_name: ShortText | None = None
    contact_id: ShortText | None = None
    phone_number: Annotated[str, Field(max_length=64)] | None = None
    organization: ShortText | None = None
    direction: Direction | None = None
    recorded_at: AwareDatetime | None = None
    duration_seconds: Annotated[float, Field(ge=0, le=7 * 24 * 3600, allow_inf_nan=False)] | None = None

    @field_validator("direction", mode="before")
    @classmethod
    def _upper_case_direction(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def to_new_call(self, fallback_title: str | None) -> NewCall:
        return NewCall(
            title=self.title if self.title is not None else fallback_title,
            notes=self.notes,
            contact_name=self.contact_name,
            contact_id=self.contact_id,
            phone_number=self.phone_number,
            organization=self.organization,
            direction=self.direction or Direction.UNKNOWN,
            recorded_at=self.recorded_at,
            duration_seconds=self.duration_seconds,
        )


class AcceptedCall(_Body):
    call_id: UUID
    status: CallStatus


class CallListItem(_Body):
    call_id: UUID
    title: str | None
    contact_name: str | None
    direction: Direction
    status: CallStatus
    duration_seconds: float | None
    created_at: datetime
    action_item_count: int
    first_action_title: str | None

    @classmethod
    def of(cls, summary: CallSummary) -> CallListItem:
        return cls(
            call_id=summary.id,
            title=summary.title,
            contact_name=summary.contact_name,
            direction=summary.direction,
            status=summary.status,
            duration_seconds=summary.duration_seconds,
            created_at=summary.created_at,
            action_item_count=summary.action_item_count,
            first_action_title=summary.first_action_title,
        )


class CallList(_Body):
    items: list[CallListItem]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class CallStatusItem(_Body):
    call_id: UUID
    status: CallStatus


class CallStatusList(_Body):
    items: list[CallStatusItem] = Field(description="Only the caller's calls; unknown ids are left out.")
    next_poll_ms: int = Field(description="When to poll again, in milliseconds (sooner while calls are in flight).")


class CallDetail(_Body):
    call_id: UUID
    title: str | None
    notes: str | None
    status: CallStatus
    direction: Direction
    contact_name: str | None
    contact_id: str | None
    phone_number: str | None
    organization: str | None
    duration_seconds: float | None
    recorded_at: datetime | None
    created_at: datetime
    updated_at: datetime
    error_reason: str | None

    @classmethod
    def of(cls, call: CallRecord) -> CallDetail:
        return cls(
            call_id=call.id,
            title=call.title,
            notes=call.notes,
            status=call.status,
            direction=call.direction,
            contact_name=call.contact_name,
            contact_id=call.contact_id,
            phone_number=call.phone_number,
            organization=call.organization,
            duration_seconds=call.duration_seconds,
            recorded_at=call.recorded_at,
            created_at=call.created_at,
            updated_at=call.updated_at,
            error_reason=call.error_reason,
        )


class BulkDeleteRequest(_Body):
    call_ids: list[UUID] = Field(min_length=1, max_length=MAX_IDS_PER_REQUEST)


class BulkDeleteResult(_Body):
    deleted: int
    missing: int
    failed: list[UUID] = Field(description="Calls whose objects could not be deleted; they are kept, retry later.")


class VoiceProfileStatus(_Body):
    """Whether the caller has a voice profile, and its provenance; never the voiceprint itself."""

    enrolled: bool
    provider: str | None = None
    model: str | None = None
    consent_version: str | None = None
    consent_current: bool = Field(
        default=False, description="Whether the profile was created under the current consent version."
    )
    required_consent_version: str = Field(description="The consent version an enrollment must send.")
    sample_duration_seconds: float | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def of(cls, profile: VoiceProfile | None, *, required_consent_version: str) -> VoiceProfileStatus:
        if profile is None:
            return cls(enrolled=False, required_consent_version=required_consent_version)
        return cls(
            enrolled=True,
            provider=profile.provider,
            model=profile.model,
            consent_version=profile.consent_version,
            consent_current=profile.consent_version == required_consent_version,
            required_consent_version=required_consent_version,
            sample_duration_seconds=profile.sample_duration_seconds,
            created_at=profile.created_at,
            updated_at=profile.updated_at,
        )


class HealthChecks(_Body):
    database: Literal["ok", "unavailable"]
    object_storage: Literal["ok", "unavailable"]


class Health(_Body):
    status: Literal["ok", "unavailable"]
    version: str
    checks: HealthChecks


class WebhookAck(_Body):
    status: DeliveryOutcome
