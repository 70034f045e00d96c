"""SQL of the runbook's maintenance work: sweeps, pruning, reprocess planning, deletion and reconcile.

Every statement that changes rows is guarded (it re-checks the condition that selected the row), so a
sweep racing a live run, a second launch of the same job or a concurrent delete never acts twice.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row

from scryon_dagster.adapters.db.lifecycle import StatusMove
from scryon_dagster.adapters.db.records import ArtifactRecord, CallRecord, LlmUsage
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.db.rows import ARTIFACT_COLUMNS, CALL_COLUMNS, artifact_record, call_record
from scryon_dagster.domain.calls import ACTIVE_STATUSES, ArtifactType, CallStatus, EventStatus, Stage
from scryon_dagster.domain.policy import IN_FLIGHT_STATUSES

# Rows read per round trip when a job walks a large table.
PAGE_SIZE = 1000
_EVENT_DELETE_BATCH = 10_000

# A call waits for the pickup when it is QUEUED, or when its Lemonfox callback has been delivered and
# no run has resumed it yet (callback mode, migration 0002).
_WAITING_FOR_PICKUP = "(status = 'QUEUED' OR (callback_state = 'RECEIVED' AND claim_id IS NULL))"
# The pickup is making progress when it claimed any call inside the stale window. No index serves
# claimed_at, so the statement evaluates this EXISTS (once) only when a waiting call is past the window.
_PICKUP_PROGRESSING = "EXISTS (SELECT 1 FROM call_records recent WHERE recent.claimed_at >= %(cutoff)s)"

# A stale call mid-flight with a retry left goes back to the queue (its wait is %(retry_delays)s, indexed
# by the retries it has used); any other stale call becomes FAILED.
_STALE_RETRY = StatusMove(IN_FLIGHT_STATUSES, CallStatus.QUEUED)
_STALE_FAILED = StatusMove(ACTIVE_STATUSES, CallStatus.FAILED)
_RETRYABLE = (
    "(status = ANY(%(retry_sources)s) AND callback_state IS NULL "
    "AND retry_count < cardinality(%(retry_delays)s::float8[]))"
)
_FAIL_STALE_CALLS = f"""
    WITH moved AS (
        UPDATE call_records SET
            status = CASE WHEN {_RETRYABLE} THEN %(retry_target)s ELSE %(failed_target)s END,
            error_reason = CASE WHEN {_RETRYABLE} THEN NULL ELSE %(code)s END,
            retry_after = CASE WHEN {_RETRYABLE}
                               THEN now() + make_interval(secs => (%(retry_delays)s::float8[])[retry_count + 1])
                               ELSE retry_after END,
            retry_count = CASE WHEN {_RETRYABLE} THEN retry_count + 1 ELSE retry_count END
        WHERE status = ANY(%(failed_sources)s) AND updated_at < %(cutoff)s
          -- calls awaiting a callback have their own, longer timeout
          AND callback_state IS DISTINCT FROM 'AWAITING'
          AND (NOT {_WAITING_FOR_PICKUP} OR NOT {_PICKUP_PROGRESSING})
        RETURNING id, user_id, status, retry_count
    ), events AS (
        INSERT INTO call_processing_events (call_id, user_id, stage, status, error_code, error_message)
        SELECT id, user_id, %(stage)s, %(event_status)s, %(code)s,
               CASE WHEN status = %(retry_target)s THEN %(retry_note)s || ' (retry ' || retry_count || ')'
                    ELSE %(failed_note)s END
        FROM moved
    )
    SELECT
        COALESCE((SELECT array_agg(id ORDER BY id) FROM moved WHERE status = %(failed_target)s), '{{}}') AS failed,
        COALESCE((SELECT array_agg(id ORDER BY id) FROM moved WHERE status = %(retry_target)s), '{{}}') AS requeued,
        -- CASE evaluates the progress check only when some waiting call is past the window
        (SELECT CASE WHEN count(*) = 0 THEN 0 WHEN {_PICKUP_PROGRESSING} THEN count(*) ELSE 0 END
         FROM call_records
         WHERE status IN ('QUEUED', 'TRANSCRIBING') AND updated_at < %(cutoff)s AND {_WAITING_FOR_PICKUP}) AS spared
"""


@dataclass(frozen=True)
class StaleSweepResult:
    failed: list[UUID]
    requeued: list[UUID]
    """Calls mid-flight put back to the queue for an automatic retry."""
    spared_waiting: int
    """Calls older than the window but spared because the pickup is making progress."""


@dataclass(frozen=True)
class CallArtifactRef:
    """One artifact row, by id (for guarded deletes) and key."""

    row_id: UUID
    call_id: UUID
    artifact_type: ArtifactType
    storage_key: str
    created_at: datetime


# --- stale calls ------------------------------------------------------------------------------
def fail_stale_calls(
    db: CallDatabase, *, cutoff: datetime, error_code: str, retry_delays: Sequence[float]
) -> StaleSweepResult:
    """In one statement: every active call not updated since ``cutoff`` becomes FAILED with a STATUS
    event, except calls waiting for the pickup while it is making progress, and calls mid-flight
    with a retry left (``retry_delays[n]``: the wait before retry n + 1), which go back to the queue.

    A heartbeat committed while the statement waits on the row makes Postgres re-check the row's
    ``updated_at``, so that call is spared.
    """
    rows = db.query(
        _FAIL_STALE_CALLS,
        {
            **{f"retry_{name}": value for name, value in _STALE_RETRY.params.items()},
            **{f"failed_{name}": value for name, value in _STALE_FAILED.params.items()},
            "cutoff": cutoff,
            "code": error_code,
            "retry_delays": list(retry_delays),
            "stage": Stage.STATUS.value,
            "event_status": EventStatus.FAILED.value,
        },
    )
    return StaleSweepResult(
        failed=list(rows[0]["failed"]), requeued=list(rows[0]["requeued"]), spared_waiting=int(rows[0]["spared"])
    )


# --- temporary audio --------------------------------------------------------------------------
def temp_audio_created_before(db: CallDatabase, cutoff: datetime) -> Iterator[list[CallArtifactRef]]:
    """TEMP_AUDIO rows created before ``cutoff``, oldest first, a page at a time (keyset paging, so
    rows deleted between pages never make it skip or repeat one)."""
    after: tuple[datetime, UUID] | None = None
    while True:
        rows = db.query(
            """
            SELECT id, call_id, artifact_type, storage_key, created_at FROM call_artifacts
            WHERE artifact_type = 'TEMP_AUDIO' AND created_at < %(cutoff)s
              AND (%(after_time)s::timestamptz IS NULL
                   OR (created_at, id) > (%(after_time)s::timestamptz, %(after_id)s::uuid))
            ORDER BY created_at, id
            LIMIT %(limit)s
            """,
            {
                "cutoff": cutoff,
                "after_time": after[0] if after else None,
                "after_id": after[1] if after else None,
                "limit": PAGE_SIZE,
            },
        )
        if not rows:
            return
        page = [_artifact_ref(row) for row in rows]
        yield page
        if len(rows) < PAGE_SIZE:
            return
        after = (page[-1].created_at, page[-1].row_id)


def delete_temp_audio_rows(db: CallDatabase, refs: Sequence[CallArtifactRef], *, cutoff: datetime) -> list[UUID]:
    """Delete these TEMP_AUDIO rows if they still point at the same key and are still past the
    cutoff; the call ids whose row this caller deleted."""
    if not refs:
        return []
    rows = db.query(
        """
        DELETE FROM call_artifacts a
        USING unnest(%(ids)s::uuid[], %(keys)s::text[]) AS doomed(id, storage_key)
        WHERE a.id = doomed.id AND a.storage_key = doomed.storage_key
          AND a.artifact_type = 'TEMP_AUDIO' AND a.created_at < %(cutoff)s
        RETURNING a.call_id
        """,
        {"ids": [ref.row_id for ref in refs], "keys": [ref.storage_key for ref in refs], "cutoff": cutoff},
    )
    return [row["call_id"] for row in rows]


# --- existence and deletion -------------------------------------------------------------------
def existing_call_ids(db: CallDatabase, call_ids: Iterable[UUID]) -> set[UUID]:
    ids = list(set(call_ids))
    if not ids:
        return set()
    rows = db.query("SELECT id FROM call_records WHERE id = ANY(%s)", (ids,))
    return {row["id"] for row in rows}


def forget_artifacts(db: CallDatabase, artifacts: Sequence[tuple[UUID, ArtifactType]]) -> int:
    """Delete the (call, type) artifact rows; how many existed."""
    if not artifacts:
        return 0
    rows = db.query(
        """
        DELETE FROM call_artifacts a
        USING unnest(%(calls)s::uuid[], %(types)s::text[]) AS gone(call_id, artifact_type)
        WHERE a.call_id = gone.call_id AND a.artifact_type = gone.artifact_type
        RETURNING a.id
        """,
        {"calls": [call_id for call_id, _ in artifacts], "types": [kind.value for _, kind in artifacts]},
    )
    return len(rows)


# --- history ----------------------------------------------------------------------------------
def delete_events_before(db: CallDatabase, cutoff: datetime) -> int:
    """Delete processing events created before ``cutoff`` in bounded batches (short transactions
    and locks, even on the first run over years of history); how many were deleted."""
    deleted = 0
    while True:
        rows = db.query(
            """
            DELETE FROM call_processing_events WHERE id IN (
                SELECT id FROM call_processing_events WHERE created_at < %s LIMIT %s
            ) RETURNING 1 AS gone
            """,
            (cutoff, _EVENT_DELETE_BATCH),
        )
        deleted += len(rows)
        if len(rows) < _EVENT_DELETE_BATCH:
            return deleted


def finished_calls_updated_before(db: CallDatabase, before: datetime) -> list[UUID]:
    """COMPLETED and FAILED calls last updated before ``before``."""
    rows = db.query(
        "SELECT id FROM call_records WHERE status IN ('COMPLETED', 'FAILED') AND updated_at < %s "
        "ORDER BY updated_at, id",
        (before,),
    )
    return [row["id"] for row in rows]


def delete_idempotency_keys_before(db: CallDatabase, cutoff: datetime) -> int:
    """Forget upload idempotency keys bound before ``cutoff``; how many."""
    rows = db.query("DELETE FROM upload_idempotency_keys WHERE created_at < %s RETURNING 1 AS gone", (cutoff,))
    return len(rows)


# --- reprocessing -----------------------------------------------------------------------------
def calls_of_user(
    db: CallDatabase, user_id: UUID, *, created_after: datetime, statuses: Collection[CallStatus]
) -> list[CallRecord]:
    rows = db.query(
        f"""
        SELECT {CALL_COLUMNS} FROM call_records
        WHERE user_id = %s AND created_at > %s AND status = ANY(%s)
        ORDER BY created_at, id
        """,
        (user_id, created_after, [status.value for status in statuses]),
    )
    return [call_record(row) for row in rows]


def artifacts_of(db: CallDatabase, call_ids: Collection[UUID]) -> dict[UUID, dict[ArtifactType, ArtifactRecord]]:
    """Every artifact row of the calls, by call (calls without any row are absent)."""
    found: dict[UUID, dict[ArtifactType, ArtifactRecord]] = {}
    if not call_ids:
        return found
    rows = db.query(f"SELECT {ARTIFACT_COLUMNS} FROM call_artifacts WHERE call_id = ANY(%s)", (list(call_ids),))
    for row in rows:
        record = artifact_record(row)
        found.setdefault(record.call_id, {})[record.artifact_type] = record
    return found


def llm_usage_of(db: CallDatabase, call_ids: Collection[UUID]) -> dict[UUID, LlmUsage]:
    """The recorded usage of each call's last analysis completion."""
    if not call_ids:
        return {}
    rows = db.query(
        """
        SELECT call_id, model, prompt_tokens, completion_tokens, cached_tokens,
               estimated_cost_usd::float8 AS estimated_cost_usd, request_id
        FROM call_llm_usage WHERE call_id = ANY(%s)
        """,
        (list(call_ids),),
    )
    return {row.pop("call_id"): LlmUsage(**row) for row in rows}


def calls_needing_renormalization(db: CallDatabase, *, created_after: datetime, version: int) -> list[UUID]:
    """COMPLETED calls created after ``created_after`` that have a raw transcript row and whose
    normalized transcript row is missing, unversioned or older than ``version``."""
    rows = db.query(
        """
        SELECT c.id FROM call_records c
        JOIN call_artifacts raw ON raw.call_id = c.id AND raw.artifact_type = 'RAW_TRANSCRIPT_JSON'
        LEFT JOIN call_artifacts normalized
            ON normalized.call_id = c.id AND normalized.artifact_type = 'NORMALIZED_TRANSCRIPT_JSON'
        WHERE c.status = 'COMPLETED' AND c.created_at > %s
          AND (normalized.schema_version IS NULL OR normalized.schema_version < %s)
        ORDER BY c.created_at, c.id
        """,
        (created_after, version),
    )
    return [row["id"] for row in rows]


# --- reconcile --------------------------------------------------------------------------------
@contextmanager
def artifacts_in_key_order(db: CallDatabase) -> Iterator[Iterator[ArtifactRecord]]:
    """Every artifact row, streamed in byte order of ``storage_key`` (the order in which object
    stores list keys) from one snapshot, through a server-side cursor: memory stays bounded
    however many rows there are."""
    with (
        db.transaction() as cursor,
        cursor.connection.cursor(name="scryon_artifacts_in_key_order", row_factory=dict_row) as stream,
    ):
        stream.itersize = PAGE_SIZE
        stream.execute(f'SELECT {ARTIFACT_COLUMNS} FROM call_artifacts ORDER BY storage_key COLLATE "C", id')
        yield (artifact_record(row) for row in stream)


def artifact_keys_of(db: CallDatabase, call_ids: Collection[UUID]) -> set[str]:
    """The storage keys the artifact rows of these calls point at, as of now."""
    if not call_ids:
        return set()
    rows = db.query("SELECT storage_key FROM call_artifacts WHERE call_id = ANY(%s)", (list(call_ids),))
    return {row["storage_key"] for row in rows}


def _artifact_ref(row: dict[str, Any]) -> CallArtifactRef:
    return CallArtifactRef(
        row_id=row["id"],
        call_id=row["call_id"],
        artifact_type=ArtifactType(row["artifact_type"]),
        storage_key=row["storage_key"],
        created_at=row["created_at"],
    )
