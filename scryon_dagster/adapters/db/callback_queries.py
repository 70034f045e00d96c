"""SQL of Lemonfox callback mode: waiting for a delivery, accepting it, resuming the call, timing out.

States (columns added by migration 0002), all on a TRANSCRIBING call:

    AWAITING  the transcription was submitted with a signed callback URL
    RECEIVED  the delivery is stored; once the submitting run has let go of the call (claim cleared),
              the pickup resumes it from normalization

Any status change clears the state (database trigger). Every move is a compare-and-set.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from scryon_dagster.adapters.db.lifecycle import RESUME_PICKUP, StatusMove
from scryon_dagster.adapters.db.records import ClaimedCall
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.db.rows import claimed_call
from scryon_dagster.domain.calls import CallStatus, ErrorCode

AWAITING = "AWAITING"

# Fails one TRANSCRIBING call that still awaits its callback, with the STATUS event the guarded
# transition writes; shared by the webhook (inside its row lock) and the timeout sweep.
_CALLBACK_FAILED = StatusMove.of(CallStatus.TRANSCRIBING, CallStatus.FAILED)
_FAIL_AWAITING = """
    WITH moved AS (
        UPDATE call_records SET status = %(target)s, error_reason = %(code)s
        WHERE id = %(call_id)s AND status = ANY(%(sources)s) AND callback_state = 'AWAITING'
          AND (%(attempt)s::int IS NULL OR attempt = %(attempt)s::int)
        RETURNING id, user_id
    )
    INSERT INTO call_processing_events (call_id, user_id, stage, status, error_code, error_message)
    SELECT id, user_id, %(stage)s, %(event_status)s, %(code)s, %(note)s FROM moved
    RETURNING call_id
"""


@dataclass(frozen=True)
class AwaitingCallback:
    """A call whose transcription callback has not arrived (yet)."""

    call_id: UUID
    user_id: UUID
    attempt: int
    requested_at: datetime
    expires_at: datetime


class PendingDelivery:
    """A call row locked for one callback delivery; decide, then mark it received or failed."""

    def __init__(self, cursor: psycopg.Cursor[dict[str, Any]], row: dict[str, Any]) -> None:
        self._cursor = cursor
        self.call_id: UUID = row["id"]
        self.user_id: UUID = row["user_id"]
        self.attempt: int = row["attempt"]
        self.status = CallStatus(row["status"])
        self.callback_state: str | None = row["callback_state"]
        self.requested_at: datetime | None = row["callback_requested_at"]
        self.expires_at: datetime | None = row["callback_expires_at"]

    def awaits(self, expires_at: datetime) -> bool:
        """True when the call still waits for the submission whose URL expires at ``expires_at``."""
        return (
            self.status is CallStatus.TRANSCRIBING
            and self.callback_state == AWAITING
            and self.expires_at is not None
            and int(self.expires_at.timestamp()) == int(expires_at.timestamp())
        )

    def mark_received(self, *, storage_key: str, content_type: str, byte_size: int) -> None:
        """Register the stored RAW_TRANSCRIPT_JSON (replacing any earlier row) and mark the call
        received, inside the delivery's transaction."""
        self._cursor.execute(
            """
            INSERT INTO call_artifacts (call_id, artifact_type, storage_key, content_type, byte_size)
            VALUES (%(call_id)s, 'RAW_TRANSCRIPT_JSON', %(key)s, %(content_type)s, %(size)s)
            ON CONFLICT (call_id, artifact_type) DO UPDATE
                SET storage_key = EXCLUDED.storage_key, content_type = EXCLUDED.content_type,
                    byte_size = EXCLUDED.byte_size, schema_version = NULL, created_at = now()
            """,
            {"call_id": self.call_id, "key": storage_key, "content_type": content_type, "size": byte_size},
        )
        self._cursor.execute(
            "UPDATE call_records SET callback_state = 'RECEIVED', callback_received_at = now() WHERE id = %s",
            (self.call_id,),
        )

    def fail(self, code: str) -> None:
        self._cursor.execute(
            _FAIL_AWAITING,
            {**_CALLBACK_FAILED.params, "call_id": self.call_id, "code": str(code), "attempt": self.attempt},
        )


class CallbackQueries:
    def __init__(self, db: CallDatabase) -> None:
        self._db = db

    # --- the submitting run -------------------------------------------------------------------
    def await_callback(self, call_id: UUID, *, attempt: int, expires_at: datetime) -> bool:
        """Mark the call as waiting for the delivery whose signed URL expires at ``expires_at``.

        Done before the submission, so that even an instant delivery finds the call waiting.
        Refused when the call is no longer this attempt's TRANSCRIBING call.
        """
        rows = self._db.query(
            """
            UPDATE call_records SET callback_state = 'AWAITING', callback_requested_at = now(),
                callback_expires_at = %s, callback_received_at = NULL
            WHERE id = %s AND status = 'TRANSCRIBING' AND attempt = %s
            RETURNING id
            """,
            (expires_at, call_id, attempt),
        )
        return bool(rows)

    def hand_off(self, call_id: UUID, *, attempt: int) -> bool:
        """The submitting run lets go of the call (its other stages are stored): from now on the
        delivery, the resume pickup or the timeout sweep moves it. Also takes it out of the run's
        batch, so a failure of that run does not fail a call that is only waiting."""
        rows = self._db.query(
            """
            UPDATE call_records SET claim_id = NULL, claimed_at = NULL
            WHERE id = %s AND attempt = %s AND status = 'TRANSCRIBING' AND callback_state IN ('AWAITING', 'RECEIVED')
            RETURNING id
            """,
            (call_id, attempt),
        )
        return bool(rows)

    # --- the webhook ------------------------------------------------------------------------
    @contextmanager
    def open_delivery(self, call_id: UUID) -> Iterator[PendingDelivery | None]:
        """The call row locked until the block ends (None when there is no such call).

        The lock serializes duplicate deliveries (the second sees the first one's outcome) and, being
        FOR NO KEY UPDATE, still lets a running stage register its artifacts meanwhile.
        """
        with self._db.transaction() as cursor:
            cursor.execute(
                """
                SELECT id, user_id, attempt, status, callback_state, callback_requested_at, callback_expires_at
                FROM call_records WHERE id = %s FOR NO KEY UPDATE
                """,
                (call_id,),
            )
            row = cursor.fetchone()
            yield PendingDelivery(cursor, row) if row is not None else None

    # --- resuming ---------------------------------------------------------------------------
    def claim_received(self, batch_id: UUID, limit: int) -> list[ClaimedCall]:
        """Atomically claim up to ``limit`` delivered, released calls for a resume run (a new attempt)."""
        return self._db.claim_from(RESUME_PICKUP, batch_id, limit)

    def begin_resume(self, call_ids: Sequence[UUID], *, batch_id: UUID) -> list[ClaimedCall]:
        """Take the delivered calls among ``call_ids`` for a run: those this batch claimed, and
        (runs launched by hand) unclaimed ones as a new attempt. Status stays TRANSCRIBING."""
        if not call_ids:
            return []
        rows = self._db.query(
            """
            UPDATE call_records SET
                attempt = CASE WHEN claim_id = %(batch)s THEN attempt ELSE attempt + 1 END,
                claimed_at = CASE WHEN claim_id = %(batch)s THEN claimed_at ELSE now() END,
                claim_id = %(batch)s
            WHERE id = ANY(%(ids)s) AND status = 'TRANSCRIBING' AND callback_state = 'RECEIVED'
              AND (claim_id IS NULL OR claim_id = %(batch)s)
            RETURNING id, user_id, attempt, retry_count
            """,
            {"batch": batch_id, "ids": list(call_ids)},
        )
        order = {call_id: index for index, call_id in enumerate(call_ids)}
        rows.sort(key=lambda row: order[row["id"]])
        return [claimed_call(row) for row in rows]

    def resume_claims_older_than(self, claimed_before: datetime) -> list[UUID]:
        """Batch ids holding delivered calls claimed before the given time (candidates for release)."""
        return self._db.claims_older_than(RESUME_PICKUP, claimed_before)

    # --- deliveries that never come ---------------------------------------------------------
    def calls_awaiting_callback_since(self, before: datetime) -> list[AwaitingCallback]:
        """Calls still waiting for a callback requested before ``before``, oldest first."""
        rows = self._db.query(
            """
            SELECT id, user_id, attempt, callback_requested_at, callback_expires_at FROM call_records
            WHERE callback_state = 'AWAITING' AND status = 'TRANSCRIBING' AND callback_requested_at < %s
            ORDER BY callback_requested_at, id
            """,
            (before,),
        )
        return [
            AwaitingCallback(
                call_id=row["id"],
                user_id=row["user_id"],
                attempt=row["attempt"],
                requested_at=row["callback_requested_at"],
                expires_at=row["callback_expires_at"],
            )
            for row in rows
        ]

    def fail_awaiting_callback(
        self, call_id: UUID, *, attempt: int | None = None, error_reason: str = ErrorCode.CALLBACK_TIMEOUT.value
    ) -> bool:
        """FAILED with ``error_reason`` only if the call still awaits its callback (a delivery that
        just arrived wins); True when this caller moved it."""
        rows = self._db.query(
            _FAIL_AWAITING,
            {**_CALLBACK_FAILED.params, "call_id": call_id, "code": str(error_reason), "attempt": attempt},
        )
        return bool(rows)
