"""Ending a failed try of a call, by the one retry rule (domain/policy.py): back to the queue for an
automatic retry while the failure is transient and retries are left, FAILED otherwise. Used by the
pipeline, the crash recovery and the stale sweep alike."""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.domain.calls import CallStatus
from scryon_dagster.domain.policy import IN_FLIGHT_STATUSES, RetryPolicy


class Settlement(StrEnum):
    RETRY = "retry"
    FAILED = "failed"
    SUPERSEDED = "superseded"
    """The call had moved on (finished, re-queued or taken by another run): nothing was written."""


def settle_failure(
    db: CallDatabase, policy: RetryPolicy, *, call_id: UUID, attempt: int, retry_count: int, code: str
) -> Settlement:
    """Retry or fail an in-flight call of this attempt; a compare-and-set, so a late caller changes nothing."""
    delay = policy.delay_before_retry(code, retry_count)
    if delay is not None and db.retry_later(
        call_id, attempt=attempt, error_reason=code, retry_count=retry_count, delay_seconds=delay
    ):
        return Settlement.RETRY
    if db.transition(call_id, IN_FLIGHT_STATUSES, CallStatus.FAILED, error_reason=code, attempt=attempt):
        return Settlement.FAILED
    return Settlement.SUPERSEDED
