"""Lemonfox callback mode: the signed callback URL a submission carries, and accepting its delivery.

The transcription stage marks the call as awaiting, submits with a signed, expiring URL and lets
go of the call. A genuine delivery (signed by any configured secret, unexpired, for the call's
current submission) stores RAW_TRANSCRIPT_JSON and marks the call received; the QUEUED sensor then
resumes it from normalization. A duplicate or late delivery changes nothing; an empty transcript
fails the call as it would in sync mode.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from uuid import UUID

from scryon_dagster.adapters.db.callback_queries import CallbackQueries
from scryon_dagster.adapters.db.records import ProcessingEvent
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.errors import ProviderError
from scryon_dagster.adapters.lemonfox import parse_transcription
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.adapters.webhooks import (
    WebhookVerificationError,
    build_signed_callback_url,
    key_id_for,
    verify_callback_query,
)
from scryon_dagster.domain.calls import ArtifactType, ErrorCode, EventStatus, Stage
from scryon_dagster.domain.provider_outputs import RawTranscript
from scryon_dagster.domain.provider_spend import AudioPrices
from scryon_dagster.domain.storage_keys import artifact_key
from scryon_dagster.pipeline.outcomes import PipelineAsset, StageSelection
from scryon_dagster.pipeline.spend import record_delivered_transcription_cost
from scryon_dagster.settings import Settings

logger = logging.getLogger(__name__)

JSON = "application/json"
API_PREFIX = "/api"
"""Where the HTTP API mounts its routes; the callback path of ``adapters.webhooks`` lives below it."""
RESUME_SELECTION = StageSelection.of([PipelineAsset.NORMALIZED_TRANSCRIPT, PipelineAsset.ANALYSIS])
"""What a call still needs once its transcript has been delivered (diarization was stored before)."""


class CallbackConfigurationError(ValueError):
    """Callback mode is on but cannot sign URLs; the message names the variable."""


class CallbackRejected(Exception):
    """A delivery that must be refused (401) and changes nothing; ``reason`` is short and safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"callback rejected: {reason}")
        self.reason = reason


class InvalidCallbackBody(Exception):
    """A genuine delivery whose body is not a readable transcript (400); nothing changes."""

    def __init__(self, code: str) -> None:
        super().__init__(f"callback body rejected: {code}")
        self.code = code


class DeliveryOutcome(StrEnum):
    ACCEPTED = "accepted"
    """Stored; the call resumes from normalization."""
    IGNORED = "ignored"
    """A duplicate or late delivery: nothing changed."""
    CALL_FAILED = "call_failed"
    """The transcript is empty: the call failed with ``transcription_empty``."""


@dataclass(frozen=True)
class CallbackTicket:
    url: str
    expires_at: datetime
    """Whole seconds, as signed into the URL."""


@dataclass(frozen=True)
class VerifiedCallback:
    call_id: UUID
    expires_at: datetime


class CallbackSigner:
    """Signs callback URLs with the current (first) secret."""

    def __init__(self, public_base_url: str, secrets: list[str], lifetime: timedelta) -> None:
        if not secrets:
            raise CallbackConfigurationError(
                "SCRYON_WEBHOOK_SECRET is required when SCRYON_TRANSCRIPTION_CALLBACK_ENABLED=true"
            )
        if not public_base_url.startswith(("https://", "http://")):
            raise CallbackConfigurationError("SCRYON_PUBLIC_BASE_URL must be an absolute http(s) URL")
        self._base_url = public_base_url.rstrip("/") + API_PREFIX
        self._secret = secrets[0]
        self._kid = key_id_for(secrets[0])
        self._lifetime = lifetime

    @classmethod
    def from_settings(cls, settings: Settings) -> CallbackSigner:
        if not settings.scryon_public_base_url:
            raise CallbackConfigurationError(
                "SCRYON_PUBLIC_BASE_URL is required when SCRYON_TRANSCRIPTION_CALLBACK_ENABLED=true"
            )
        return cls(
            settings.scryon_public_base_url,
            settings.webhook_secrets,
            timedelta(minutes=settings.scryon_transcription_callback_timeout_minutes),
        )

    def ticket(self, call_id: UUID, now: datetime | None = None) -> CallbackTicket:
        expires_at = ((now or datetime.now(UTC)) + self._lifetime).replace(microsecond=0)
        url = build_signed_callback_url(self._base_url, str(call_id), self._secret, self._kid, expires_at)
        return CallbackTicket(url=url, expires_at=expires_at)


def verify_callback(query: Mapping[str, str], secrets: list[str], now: datetime | None = None) -> VerifiedCallback:
    """The call and submission a callback URL names; raise :class:`CallbackRejected` unless its
    parameters are complete, it has not expired and one of the configured secrets signed it."""
    if not secrets:
        raise CallbackRejected("not_configured")
    try:
        call_id = verify_callback_query(query, [(key_id_for(secret), secret) for secret in secrets], now=now)
        return VerifiedCallback(call_id=UUID(call_id), expires_at=datetime.fromtimestamp(int(query["exp"]), UTC))
    except WebhookVerificationError as exc:
        raise CallbackRejected(exc.reason) from None
    except ValueError:
        raise CallbackRejected("malformed_parameter") from None


def accept_transcription_callback(
    db: CallDatabase, store: ObjectStore, callback: VerifiedCallback, body: bytes, *, prices: AudioPrices
) -> DeliveryOutcome:
    """Store a verified delivery for the call's current submission and mark the call received; an
    accepted transcript's cost (at ``prices``) goes to the cost ledger.

    Raises :class:`InvalidCallbackBody` (nothing changed) for unreadable bytes and
    :class:`CallbackRejected` when the call does not exist.
    """
    transcript: RawTranscript | None
    try:
        transcript = parse_transcription(body)
    except ProviderError as exc:
        if exc.code != ErrorCode.TRANSCRIPTION_EMPTY:
            raise InvalidCallbackBody(exc.code.value) from None
        transcript = None  # a genuine verdict: nothing was said
    with CallbackQueries(db).open_delivery(callback.call_id) as pending:
        if pending is None:
            raise CallbackRejected("unknown_call")
        if not pending.awaits(callback.expires_at):
            return DeliveryOutcome.IGNORED
        if transcript is None:
            pending.fail(ErrorCode.TRANSCRIPTION_EMPTY)
        else:
            key = artifact_key(pending.user_id, pending.call_id, ArtifactType.RAW_TRANSCRIPT_JSON)
            size = store.put_bytes(key, body, JSON)
            pending.mark_received(storage_key=key, content_type=JSON, byte_size=size)
        waited = datetime.now(UTC) - pending.requested_at if pending.requested_at else None
        user_id, call_id = pending.user_id, pending.call_id
    _record_delivery(db, call_id, user_id, waited, failed=transcript is None)
    if transcript is None:
        return DeliveryOutcome.CALL_FAILED
    record_delivered_transcription_cost(db, prices, call_id, user_id, transcript)
    logger.info("callback for call %s stored (%d segments)", call_id, len(transcript.segments))
    return DeliveryOutcome.ACCEPTED


def _record_delivery(db: CallDatabase, call_id: UUID, user_id: UUID, waited: timedelta | None, *, failed: bool) -> None:
    """The TRANSCRIBED stage's terminal event; its duration spans submission to delivery."""
    event = ProcessingEvent(
        call_id=call_id,
        user_id=user_id,
        stage=Stage.TRANSCRIBED.value,
        status=(EventStatus.FAILED if failed else EventStatus.COMPLETED).value,
        provider="lemonfox",
        duration_ms=int(waited.total_seconds() * 1000) if waited is not None else None,
        error_code=ErrorCode.TRANSCRIPTION_EMPTY.value if failed else None,
        error_message="callback",
    )
    try:
        db.record_events([event])
    except Exception as exc:  # the delivery itself is stored; a lost event row must not refuse it
        logger.warning("callback event of call %s not recorded (%s)", call_id, type(exc).__name__)
