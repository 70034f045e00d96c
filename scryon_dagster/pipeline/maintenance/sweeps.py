"""Sweeps: calls that stopped making progress, temporary audio past its TTL, objects of deleted calls."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from scryon_dagster.adapters.db import maintenance as maintenance_sql
from scryon_dagster.adapters.db.callback_queries import CallbackQueries
from scryon_dagster.adapters.db.maintenance import PAGE_SIZE
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.domain.calls import ErrorCode
from scryon_dagster.domain.policy import RetryPolicy
from scryon_dagster.domain.storage_keys import USERS_PREFIX, parse_call_prefix
from scryon_dagster.pipeline.maintenance._checks import MaintenanceError, chunks, require_aware, require_positive

logger = logging.getLogger(__name__)

SWEEP_ERROR_CODES = frozenset({ErrorCode.STALE_JOB, ErrorCode.MANUAL_SWEEP})
# --- stale calls -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepReport:
    failed: list[UUID]
    requeued: list[UUID]
    """Calls mid-flight put back to the queue for an automatic retry (a scheduled sweep only)."""
    callback_timeouts: list[UUID]
    spared_queued: int
    """Calls past the window, waiting for the pickup, spared because the pickup is making progress."""


def sweep_stale_calls(
    db: CallDatabase,
    *,
    now: datetime,
    stale_after: timedelta,
    error_code: ErrorCode,
    callback_timeout: timedelta | None = None,
    retry_policy: RetryPolicy | None = None,
) -> SweepReport:
    """Fail the calls that stopped making progress.

    QUEUED/TRANSCRIBING/ANALYZING calls not updated since ``now - stale_after`` become FAILED with
    ``error_code`` (one guarded statement, one STATUS event per call) — or, mid-flight with a retry
    left by ``retry_policy`` (a transient ``stale_job``: their run died unseen), go back to the queue
    for it; an operator's ``manual_sweep`` fails them. Running calls heartbeat, so a
    live long call is never stale. A backlog is not stale while the pickup progresses: calls waiting for
    it (QUEUED, or a delivered callback not yet resumed) are failed only when no call at all was
    claimed within the window. Calls awaiting a Lemonfox callback are left to ``callback_timeout``:
    those waiting longer become FAILED ``callback_timeout`` (with None, they are left alone).
    """
    require_aware(now=now)
    require_positive(stale_after=stale_after)
    if callback_timeout is not None:
        require_positive(callback_timeout=callback_timeout)
    if error_code not in SWEEP_ERROR_CODES:
        raise MaintenanceError(f"a sweep fails calls with {' or '.join(sorted(SWEEP_ERROR_CODES))}, not {error_code}")
    code = ErrorCode(error_code)
    retry_delays = retry_policy.delays(code) if retry_policy is not None else []
    result = maintenance_sql.fail_stale_calls(
        db, cutoff=now - stale_after, error_code=code.value, retry_delays=retry_delays
    )
    timeouts = _fail_expired_callbacks(db, requested_before=now - callback_timeout) if callback_timeout else []
    logger.info(
        "stale sweep: %d failed (%s), %d re-queued for a retry, %d callback timeouts, %d waiting calls spared",
        len(result.failed),
        code.value,
        len(result.requeued),
        len(timeouts),
        result.spared_waiting,
    )
    return SweepReport(
        failed=result.failed,
        requeued=result.requeued,
        callback_timeouts=timeouts,
        spared_queued=result.spared_waiting,
    )


def _fail_expired_callbacks(db: CallDatabase, *, requested_before: datetime) -> list[UUID]:
    callbacks = CallbackQueries(db)
    return [
        waiting.call_id
        for waiting in callbacks.calls_awaiting_callback_since(requested_before)
        # guarded per call: a delivery that lands meanwhile wins
        if callbacks.fail_awaiting_callback(
            waiting.call_id, attempt=waiting.attempt, error_reason=ErrorCode.CALLBACK_TIMEOUT.value
        )
    ]


# --- temporary audio and orphans ---------------------------------------------------------------------


@dataclass(frozen=True)
class TempAudioSweepReport:
    deleted: list[UUID]
    """Calls whose TEMP_AUDIO row was deleted."""
    missing_objects: int
    """Of those, rows whose object was already gone."""


def sweep_temp_audio(db: CallDatabase, store: ObjectStore, *, now: datetime, ttl: timedelta) -> TempAudioSweepReport:
    """Delete TEMP_AUDIO created before ``now - ttl``: the object first, then its row (a crash in between
    leaves a row the next sweep finishes). Nothing else is ever deleted."""
    require_aware(now=now)
    require_positive(ttl=ttl)
    cutoff = now - ttl
    deleted: list[UUID] = []
    missing_objects = 0
    for page in maintenance_sql.temp_audio_created_before(db, cutoff):
        for ref in page:
            if store.exists(ref.storage_key):
                store.delete(ref.storage_key)
            else:
                missing_objects += 1
        deleted.extend(maintenance_sql.delete_temp_audio_rows(db, page, cutoff=cutoff))
    logger.info("temp audio sweep: %d deleted, %d objects were already gone", len(deleted), missing_objects)
    return TempAudioSweepReport(deleted=deleted, missing_objects=missing_objects)


@dataclass(frozen=True)
class OrphanReport:
    calls: list[UUID]
    """Deleted calls whose objects were reaped (or, in a dry run, would be)."""
    objects_deleted: int
    bytes_deleted: int


def reap_orphan_artifacts(
    db: CallDatabase, store: ObjectStore, *, now: datetime, min_age: timedelta, dry_run: bool = False
) -> OrphanReport:
    """Delete objects under ``users/{u}/calls/{c}/`` whose call row no longer exists.

    Only objects last modified before ``now - min_age``: intake writes the audio before the row, so a
    fresh object without a row is a live upload. Call existence is checked per page of keys, right
    before that page's deletes; keys outside the call layout are never touched.
    """
    require_aware(now=now)
    require_positive(min_age=min_age)
    cutoff = now - min_age
    calls: dict[UUID, None] = {}  # insertion-ordered set
    objects = size = 0
    for page in chunks(store.list_objects(USERS_PREFIX), PAGE_SIZE):
        old = [
            (info, owner[1]) for info in page if info.last_modified < cutoff and (owner := parse_call_prefix(info.key))
        ]
        existing = maintenance_sql.existing_call_ids(db, (call_id for _, call_id in old))
        for info, call_id in old:
            if call_id in existing:
                continue
            if not dry_run:
                store.delete(info.key)
            calls[call_id] = None
            objects += 1
            size += info.size
    logger.info(
        "orphan reaper%s: %d objects (%d bytes) of %d calls", " (dry run)" if dry_run else "", objects, size, len(calls)
    )
    return OrphanReport(calls=list(calls), objects_deleted=objects, bytes_deleted=size)
