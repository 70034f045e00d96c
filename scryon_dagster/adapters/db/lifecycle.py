"""The status machine and the pickup's claims in SQL: every status write of a call, each checked
against the transition table (``domain.calls.ALLOWED_TRANSITIONS``), and the claims that hold calls
for a batch or a run.

A statement that moves a status takes its source and target statuses from a ``StatusMove``, which
refuses (at import) any move the table does not allow; no statement writes a status literal.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from scryon_dagster.adapters.db.connection import Database, DatabaseError
from scryon_dagster.adapters.db.records import CallRecord, ClaimedCall, ClaimRelease
from scryon_dagster.adapters.db.rows import CALL_COLUMNS, call_record, claimed_call
from scryon_dagster.domain.calls import CallStatus, EventStatus, Stage, is_allowed_transition
from scryon_dagster.domain.policy import IN_FLIGHT_STATUSES, RESTING_STATUSES


class IllegalTransitionError(DatabaseError):
    """A status change the status machine does not allow."""


@dataclass(frozen=True)
class StatusMove:
    """The status change one statement makes, from any of ``sources`` to ``target``; refused when the
    transition table does not allow every one of them."""

    sources: frozenset[CallStatus]
    target: CallStatus

    def __post_init__(self) -> None:
        illegal = sorted(status for status in self.sources if not is_allowed_transition(status, self.target))
        if illegal:
            raise IllegalTransitionError(f"{'/'.join(illegal)} -> {self.target} is not a legal transition")

    @classmethod
    def of(cls, sources: CallStatus | Collection[CallStatus], target: CallStatus) -> StatusMove:
        return cls(frozenset({sources} if isinstance(sources, CallStatus) else sources), target)

    @property
    def params(self) -> dict[str, Any]:
        """``sources`` and ``target`` for the statement, and the STATUS event's note and status."""
        return {
            "sources": sorted(status.value for status in self.sources),
            "target": self.target.value,
            "note": f"status -> {self.target.value}",
            "stage": Stage.STATUS.value,
            "event_status": (EventStatus.FAILED if self.target is CallStatus.FAILED else EventStatus.COMPLETED).value,
        }


BEGIN_PROCESSING = StatusMove(frozenset({CallStatus.QUEUED}) | RESTING_STATUSES, CallStatus.TRANSCRIBING)
RETRY_LATER = StatusMove(IN_FLIGHT_STATUSES, CallStatus.QUEUED)
LAUNCH_FAILED = StatusMove.of((CallStatus.QUEUED, CallStatus.TRANSCRIBING), CallStatus.FAILED)


@dataclass(frozen=True)
class PickupQueue:
    """Calls waiting for the pickup in one state, claimed oldest first by ``order_column``."""

    state: str
    """SQL: the calls of this queue, claimed or not."""
    ready: str
    """SQL: those of them that may be claimed now."""
    order_column: str


QUEUED_PICKUP = PickupQueue(
    state="status = 'QUEUED'", ready="retry_after IS NULL OR retry_after <= now()", order_column="created_at"
)
RESUME_PICKUP = PickupQueue(
    state="status = 'TRANSCRIBING' AND callback_state = 'RECEIVED'", ready="TRUE", order_column="callback_received_at"
)
"""Calls whose Lemonfox callback was delivered and whose submitting run let go of them (callback mode)."""


class CallLifecycle(Database):
    """Status moves, claims and heartbeats of calls."""

    def transition(
        self,
        call_id: UUID,
        expected: CallStatus | Collection[CallStatus],
        target: CallStatus,
        *,
        error_reason: str | None = None,
        attempt: int | None = None,
    ) -> bool:
        """Compare-and-set the status; True when this caller moved the call.

        Refused (False, row unchanged) when the call is not in an expected status any more, or,
        with ``attempt``, when it has been re-queued since. Each move writes an event row.
        """
        move = StatusMove.of(expected, target)
        params = {**move.params, "error_reason": error_reason, "call_id": call_id, "attempt": attempt}

        def set_status(cur: psycopg.Cursor[dict[str, Any]], retried: bool) -> bool:
            cur.execute(
                """
                WITH moved AS (
                    UPDATE call_records SET status = %(target)s, error_reason = %(error_reason)s
                    WHERE id = %(call_id)s AND status = ANY(%(sources)s)
                      AND (%(attempt)s::int IS NULL OR attempt = %(attempt)s::int)
                    RETURNING id, user_id
                )
                INSERT INTO call_processing_events (call_id, user_id, stage, status, error_code, error_message)
                SELECT id, user_id, %(stage)s, %(event_status)s, %(error_reason)s, %(note)s FROM moved
                RETURNING call_id
                """,
                params,
            )
            if cur.fetchone() is not None:
                return True
            return retried and attempt is not None and _moved_already(cur, call_id, target, attempt)

        return self.run(set_status)

    def begin_processing(
        self,
        call_ids: Sequence[UUID],
        *,
        batch_id: UUID,
        run_id: UUID | None = None,
        take_idle: bool = True,
        assets: Sequence[str] | None = None,
    ) -> list[ClaimedCall]:
        """Move the calls a run may work on to TRANSCRIBING, held by ``run_id`` (default: the batch).

        Those are the calls this batch claimed from the queue and unclaimed QUEUED ones (a relaunched
        batch takes what its predecessor gave back), each as a new attempt unless the batch claimed
        it; with ``take_idle`` (runs launched by hand) also resting calls (``domain.policy.is_idle``),
        whose new processing cycle rebuilds ``assets`` (None: every asset). Calls that another run
        holds, and resting calls without ``take_idle``, are left alone and not returned.
        """
        params = {
            **BEGIN_PROCESSING.params,
            "resting": sorted(status.value for status in RESTING_STATUSES),
            "batch": batch_id,
            "holder": run_id or batch_id,
            "ids": list(call_ids),
            "take_idle": take_idle,
            "assets": list(assets) if assets is not None else None,
        }

        def begin(cur: psycopg.Cursor[dict[str, Any]], retried: bool) -> list[dict[str, Any]]:
            cur.execute(
                """
                WITH moved AS (
                    UPDATE call_records SET
                        status = %(target)s, error_reason = NULL, retry_after = NULL,
                        attempt = CASE WHEN status = 'QUEUED' AND claim_id = %(batch)s THEN attempt
                                       ELSE attempt + 1 END,
                        claimed_at = now(),
                        claim_id = %(holder)s,
                        cycle_assets = CASE WHEN status = ANY(%(resting)s) THEN %(assets)s::text[]
                                            ELSE cycle_assets END
                    WHERE id = ANY(%(ids)s) AND status = ANY(%(sources)s)
                      AND ((%(take_idle)s AND status = ANY(%(resting)s))
                           OR (status = 'QUEUED' AND (claim_id IS NULL OR claim_id = %(batch)s)))
                    RETURNING id, user_id, attempt, retry_count
                ), events AS (
                    INSERT INTO call_processing_events (call_id, user_id, stage, status, error_message)
                    SELECT id, user_id, %(stage)s, %(event_status)s, %(note)s FROM moved
                )
                SELECT id, user_id, attempt, retry_count FROM moved
                """,
                params,
            )
            rows = list(cur.fetchall())
            if retried:  # the first try may have committed: its calls are this run's already
                cur.execute(
                    "SELECT id, user_id, attempt, retry_count FROM call_records WHERE id = ANY(%(ids)s) "
                    "AND status = %(target)s AND claim_id = %(holder)s AND callback_state IS NULL",
                    params,
                )
                taken = {row["id"] for row in rows}
                rows += [row for row in cur.fetchall() if row["id"] not in taken]
            return rows

        rows = self.run(begin)
        order = {call_id: index for index, call_id in enumerate(call_ids)}
        rows.sort(key=lambda row: order[row["id"]])
        return [claimed_call(row) for row in rows]

    def retry_later(
        self, call_id: UUID, *, attempt: int, error_reason: str, retry_count: int, delay_seconds: float
    ) -> bool:
        """Put an in-flight call of this attempt back to QUEUED for its retry number ``retry_count + 1``,
        not to be picked up for ``delay_seconds``; True when this caller moved it. The event row
        carries the failure's code."""
        params = {
            **RETRY_LATER.params,
            "call_id": call_id,
            "attempt": attempt,
            "retry_count": retry_count,
            "delay": delay_seconds,
            "error_reason": error_reason,
            "event_status": EventStatus.FAILED.value,
        }

        def requeue(cur: psycopg.Cursor[dict[str, Any]], retried: bool) -> bool:
            cur.execute(
                """
                WITH moved AS (
                    UPDATE call_records SET status = %(target)s, error_reason = NULL,
                        retry_count = retry_count + 1,
                        retry_after = now() + make_interval(secs => %(delay)s)
                    WHERE id = %(call_id)s AND status = ANY(%(sources)s)
                      AND attempt = %(attempt)s AND retry_count = %(retry_count)s
                    RETURNING id, user_id, retry_count
                )
                INSERT INTO call_processing_events (call_id, user_id, stage, status, error_code, error_message)
                SELECT id, user_id, %(stage)s, %(event_status)s, %(error_reason)s,
                       %(note)s || ' (retry ' || retry_count || ' after ' || %(delay)s::int || ' s)'
                FROM moved
                RETURNING call_id
                """,
                params,
            )
            if cur.fetchone() is not None:
                return True
            return retried and _moved_already(cur, call_id, RETRY_LATER.target, attempt)

        return self.run(requeue)

    def heartbeat(self, call_ids: Iterable[UUID]) -> None:
        """Show progress on running calls (bumps updated_at, which the stale sweeper reads)."""
        ids = list(call_ids)
        if ids:
            self.query(
                "UPDATE call_records SET updated_at = now() WHERE id = ANY(%s) AND status = ANY(%s)",
                (ids, sorted(status.value for status in IN_FLIGHT_STATUSES)),
            )

    def silent_in_flight_holders(self, silent_since: datetime) -> list[UUID]:
        """The holders (run or batch ids) of calls mid-flight that have shown no sign of life (a status
        move or a heartbeat) since ``silent_since``."""
        rows = self.query(
            "SELECT DISTINCT claim_id FROM call_records "
            "WHERE status = ANY(%s) AND claim_id IS NOT NULL AND updated_at < %s",
            (sorted(status.value for status in IN_FLIGHT_STATUSES), silent_since),
        )
        return [row["claim_id"] for row in rows]

    def calls_held_by(self, holder_id: UUID) -> list[CallRecord]:
        """The calls whose claim is ``holder_id``: a pickup batch's claimed calls, or a run's taken ones."""
        rows = self.query(f"SELECT {CALL_COLUMNS} FROM call_records WHERE claim_id = %s", (holder_id,))
        return [call_record(row) for row in rows]

    # --- the pickup -----------------------------------------------------------------------------
    def claim_from(self, queue: PickupQueue, batch_id: UUID, limit: int) -> list[ClaimedCall]:
        """Atomically claim up to ``limit`` unclaimed, ready calls of ``queue``, oldest first, each as a
        new attempt. Concurrent claimers skip each other's rows (SKIP LOCKED): no call is claimed twice."""
        rows = self.query(
            f"""
            UPDATE call_records SET claim_id = %(batch)s, claimed_at = now(), attempt = attempt + 1
            WHERE id IN (
                SELECT id FROM call_records
                WHERE {queue.state} AND claim_id IS NULL AND ({queue.ready})
                ORDER BY {queue.order_column}, id
                LIMIT %(limit)s
                FOR UPDATE SKIP LOCKED
            )
            RETURNING id, user_id, attempt, retry_count, {queue.order_column} AS queued_at
            """,
            {"batch": batch_id, "limit": limit},
        )
        rows.sort(key=lambda row: (row["queued_at"], row["id"]))
        return [claimed_call(row) for row in rows]

    def claims_older_than(self, queue: PickupQueue, claimed_before: datetime) -> list[UUID]:
        """Batch ids holding calls of ``queue`` claimed before the given time (candidates for release)."""
        rows = self.query(
            f"SELECT DISTINCT claim_id FROM call_records "
            f"WHERE {queue.state} AND claim_id IS NOT NULL AND claimed_at < %s",
            (claimed_before,),
        )
        return [row["claim_id"] for row in rows]

    def claim_queued(self, batch_id: UUID, limit: int) -> list[ClaimedCall]:
        """Claim up to ``limit`` QUEUED calls whose retry is due (``claim_from`` the QUEUED pickup)."""
        return self.claim_from(QUEUED_PICKUP, batch_id, limit)

    def queued_claims_older_than(self, claimed_before: datetime) -> list[UUID]:
        return self.claims_older_than(QUEUED_PICKUP, claimed_before)

    def release_claim(self, batch_id: UUID, *, max_unstarted_pickups: int, error_reason: str) -> ClaimRelease:
        """Give a batch's calls that its run never started back to their pickup: QUEUED calls, and
        delivered callbacks waiting to resume.

        A call that reaches ``max_unstarted_pickups`` claims in a row without starting becomes FAILED
        with ``error_reason`` instead (with its event row), so a run that never starts cannot hold a
        call in a claim-and-release loop.
        """
        rows = self.query(
            f"""
            WITH unstarted AS (
                SELECT id, unstarted_pickups + 1 >= %(limit)s AS exhausted FROM call_records
                WHERE claim_id = %(batch)s AND (({QUEUED_PICKUP.state}) OR ({RESUME_PICKUP.state}))
                  AND status = ANY(%(sources)s)
                FOR UPDATE
            ), released AS (
                UPDATE call_records call SET claim_id = NULL, claimed_at = NULL,
                                             unstarted_pickups = call.unstarted_pickups + 1
                FROM unstarted WHERE call.id = unstarted.id AND NOT unstarted.exhausted
                RETURNING call.id
            ), failed AS (
                UPDATE call_records call SET status = %(target)s, error_reason = %(error_reason)s
                FROM unstarted WHERE call.id = unstarted.id AND unstarted.exhausted
                RETURNING call.id, call.user_id
            ), events AS (
                INSERT INTO call_processing_events (call_id, user_id, stage, status, error_code, error_message)
                SELECT id, user_id, %(stage)s, %(event_status)s, %(error_reason)s, %(note)s FROM failed
            )
            SELECT (SELECT count(*) FROM released) AS released, (SELECT count(*) FROM failed) AS failed
            """,
            {**LAUNCH_FAILED.params, "batch": batch_id, "limit": max_unstarted_pickups, "error_reason": error_reason},
        )
        return ClaimRelease(released=int(rows[0]["released"]), failed=int(rows[0]["failed"]))


def _moved_already(cur: psycopg.Cursor[dict[str, Any]], call_id: UUID, target: CallStatus, attempt: int) -> bool:
    """Whether an earlier try of this very move committed (only its answer was lost)."""
    cur.execute(
        "SELECT 1 FROM call_records WHERE id = %s AND status = %s AND attempt = %s", (call_id, target.value, attempt)
    )
    return cur.fetchone() is not None
