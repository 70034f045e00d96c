"""Every SQL statement of the call database, behind one class that returns typed records."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar
from uuid import UUID

import psycopg
import tenacity
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from scryon_dagster.adapters.db.records import (
    ArtifactRecord,
    CallRecord,
    ClaimedCall,
    ClaimRelease,
    LlmUsage,
    NewCall,
    ProcessingEvent,
    UserRecord,
    VoiceProfile,
)
from scryon_dagster.domain.analysis import ActionItemDraft, SentimentSummary
from scryon_dagster.domain.calls import (
    ArtifactType,
    CallStatus,
    Direction,
    EventStatus,
    Stage,
    is_allowed_transition,
)

_CALL_COLUMNS = (
    "id, user_id, title, notes, contact_name, contact_id, phone_number, organization, direction, "
    "recorded_at, duration_seconds, status, error_reason, claim_id, claimed_at, attempt, created_at, updated_at, "
    "retry_count, retry_after, cycle_started_at, cycle_assets"
)
# Lost connections (a restart, a failover, a killed backend) and their kin: worth running the statement again.
_RETRY_WAIT = tenacity.wait_exponential_jitter(multiplier=0.05, max=2.0)
_ARTIFACT_COLUMNS = "call_id, artifact_type, storage_key, content_type, byte_size, schema_version, created_at"


_T = TypeVar("_T")


class DatabaseError(RuntimeError):
    """The call database refused or failed an operation."""


class DatabaseUnavailableError(DatabaseError):
    """The call database cannot be reached."""


class IllegalTransitionError(DatabaseError):
    """A status change the status machine does not allow."""


class CallDatabase:
    """The call database (Postgres is the source of truth). Thread-safe; one per process."""

    def __init__(
        self,
        database_url: str,
        *,
        max_connections: int = 10,
        timeout_seconds: float = 10,
        retry_seconds: float = 30,
    ) -> None:
        """``retry_seconds``: how long a statement that lost its connection is tried again (0: never)."""
        self._pool = ConnectionPool(
            database_url,
            min_size=1,
            max_size=max_connections,
            timeout=timeout_seconds,
            kwargs={"autocommit": False, "connect_timeout": 5},
            open=False,
            name="scryon-calls",
            # a pooled connection may have died with a server restart: check it before handing it out
            check=ConnectionPool.check_connection,
        )
        self._opened = False
        self._retry_seconds = retry_seconds

    # --- lifecycle ------------------------------------------------------------------------------
    def open(self) -> CallDatabase:
        if not self._opened:
            self._pool.open(wait=False)
            self._opened = True
        return self

    def close(self) -> None:
        if self._opened:
            self._pool.close()
            self._opened = False

    def __enter__(self) -> CallDatabase:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
        """A cursor inside one transaction, committed on success; connection failures become
        DatabaseUnavailableError."""
        self.open()
        try:
            with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                yield cur
        except PoolTimeout as exc:
            raise DatabaseUnavailableError("call database unreachable (connection pool timeout)") from exc
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailableError(f"call database unreachable ({type(exc).__name__})") from exc

    def run(self, work: Callable[[psycopg.Cursor[dict[str, Any]], bool], _T]) -> _T:
        """``work(cursor, retried)`` in one transaction, run again with bounded backoff when the
        connection is lost, for up to ``retry_seconds``; then DatabaseUnavailableError.

        ``retried`` is True on a second or later try: the earlier commit may have happened with only
        its answer lost, so a statement that is not idempotent checks for its own earlier effect.
        For this package's query classes only.
        """
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(DatabaseUnavailableError),
            stop=tenacity.stop_after_delay(self._retry_seconds),
            wait=_RETRY_WAIT,
            reraise=True,
        )
        for attempt in retrying:
            with attempt, self.transaction() as cur:
                return work(cur, attempt.retry_state.attempt_number > 1)
        raise AssertionError("unreachable: tenacity reraises the last error")

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        """One statement in its own transaction, retried on a lost connection (see ``run``). For this
        package's query classes only: callers outside ``adapters/db`` use the named methods."""

        def execute(cur: psycopg.Cursor[dict[str, Any]], retried: bool) -> list[dict[str, Any]]:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []

        return self.run(execute)

    def check(self) -> None:
        """Raise DatabaseUnavailableError unless a round trip to the database succeeds."""
        self.query("SELECT 1 AS ok")

    # --- users ----------------------------------------------------------------------------------
    def ensure_user(
        self, external_user_id: str, *, display_name: str | None = None, email: str | None = None
    ) -> UserRecord:
        rows = self.query(
            """
            INSERT INTO users (external_user_id, display_name, email) VALUES (%s, %s, %s)
            ON CONFLICT (external_user_id) DO UPDATE
                SET display_name = COALESCE(EXCLUDED.display_name, users.display_name),
                    email = COALESCE(EXCLUDED.email, users.email),
                    updated_at = CASE WHEN EXCLUDED.display_name IS NULL AND EXCLUDED.email IS NULL
                                      THEN users.updated_at ELSE now() END
            RETURNING id, external_user_id, email, display_name
            """,
            (external_user_id, display_name, email),
        )
        return UserRecord(**rows[0])

    def find_user(self, reference: str) -> UserRecord | None:
        """A user by id (UUID text) or by external user id."""
        rows = self.query(
            "SELECT id, external_user_id, email, display_name FROM users WHERE external_user_id = %s OR id::text = %s",
            (reference, reference),
        )
        return UserRecord(**rows[0]) if rows else None

    def get_user(self, user_id: UUID) -> UserRecord | None:
        rows = self.query("SELECT id, external_user_id, email, display_name FROM users WHERE id = %s", (user_id,))
        return UserRecord(**rows[0]) if rows else None

    # --- calls ----------------------------------------------------------------------------------
    def create_queued_call(
        self,
        *,
        call_id: UUID,
        user_id: UUID,
        call: NewCall,
        temp_audio_key: str,
        temp_audio_content_type: str,
        temp_audio_size: int,
    ) -> CallRecord:
        """Insert the call as QUEUED together with its TEMP_AUDIO artifact, in one transaction."""

        def insert(cur: psycopg.Cursor[dict[str, Any]], retried: bool) -> dict[str, Any] | None:
            cur.execute(
                f"""
                INSERT INTO call_records (id, user_id, title, notes, contact_name, contact_id,
                    phone_number, organization, direction, recorded_at, duration_seconds, status)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'QUEUED')
                ON CONFLICT (id) DO NOTHING
                RETURNING {_CALL_COLUMNS}
                """,
                (
                    call_id, user_id, call.title, call.notes, call.contact_name, call.contact_id,
                    call.phone_number, call.organization, call.direction.value, call.recorded_at,
                    call.duration_seconds,
                ),
            )  # fmt: skip
            row = cur.fetchone()
            if row is None and retried:  # the first try committed; only its answer was lost
                cur.execute(f"SELECT {_CALL_COLUMNS} FROM call_records WHERE id = %s", (call_id,))
                return cur.fetchone()
            cur.execute(
                """
                INSERT INTO call_artifacts (call_id, artifact_type, storage_key, content_type, byte_size)
                VALUES (%s, 'TEMP_AUDIO', %s, %s, %s)
                """,
                (call_id, temp_audio_key, temp_audio_content_type, temp_audio_size),
            )
            return row

        row = self.run(insert)
        if row is None:
            raise DatabaseError("a call with this id exists already")
        return _call(row)

    def get_call(self, call_id: UUID) -> CallRecord | None:
        rows = self.query(f"SELECT {_CALL_COLUMNS} FROM call_records WHERE id = %s", (call_id,))
        return _call(rows[0]) if rows else None

    def get_calls(self, call_ids: Iterable[UUID]) -> dict[UUID, CallRecord]:
        ids = list(call_ids)
        if not ids:
            return {}
        rows = self.query(f"SELECT {_CALL_COLUMNS} FROM call_records WHERE id = ANY(%s)", (ids,))
        return {row["id"]: _call(row) for row in rows}

    def delete_call(self, call_id: UUID) -> bool:
        """Delete the call row; artifacts, action items, events, sentiment and usage rows cascade.
        Callers delete the call's objects first (see ``pipeline.maintenance.delete_calls``)."""
        return bool(self.query("DELETE FROM call_records WHERE id = %s RETURNING id", (call_id,)))

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
        expected_set = {expected} if isinstance(expected, CallStatus) else set(expected)
        illegal = [status for status in expected_set if not is_allowed_transition(status, target)]
        if illegal:
            raise IllegalTransitionError(f"{'/'.join(sorted(illegal))} -> {target} is not a legal transition")
        event_status = EventStatus.FAILED if target is CallStatus.FAILED else EventStatus.COMPLETED
        params = {
            "target": target.value,
            "error_reason": error_reason,
            "call_id": call_id,
            "expected": [status.value for status in expected_set],
            "attempt": attempt,
            "stage": Stage.STATUS.value,
            "event_status": event_status.value,
            "note": f"status -> {target.value}",
        }

        def move(cur: psycopg.Cursor[dict[str, Any]], retried: bool) -> bool:
            cur.execute(
                """
                WITH moved AS (
                    UPDATE call_records SET status = %(target)s, error_reason = %(error_reason)s
                    WHERE id = %(call_id)s AND status = ANY(%(expected)s)
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

        return self.run(move)

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
        it; with ``take_idle`` (runs launched by hand) also COMPLETED and FAILED calls, whose new
        processing cycle rebuilds ``assets`` (None: every asset). Calls that another run holds, and
        finished calls without ``take_idle``, are left alone and not returned.
        """
        params = {
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
                        status = 'TRANSCRIBING', error_reason = NULL, retry_after = NULL,
                        attempt = CASE WHEN status = 'QUEUED' AND claim_id = %(batch)s THEN attempt
                                       ELSE attempt + 1 END,
                        claimed_at = now(),
                        claim_id = %(holder)s,
                        cycle_assets = CASE WHEN status IN ('COMPLETED', 'FAILED') THEN %(assets)s::text[]
                                            ELSE cycle_assets END
                    WHERE id = ANY(%(ids)s)
                      AND ((%(take_idle)s AND status IN ('COMPLETED', 'FAILED'))
                           OR (status = 'QUEUED' AND (claim_id IS NULL OR claim_id = %(batch)s)))
                    RETURNING id, user_id, attempt, retry_count
                ), events AS (
                    INSERT INTO call_processing_events (call_id, user_id, stage, status, error_message)
                    SELECT id, user_id, 'STATUS', 'COMPLETED', 'status -> TRANSCRIBING' FROM moved
                )
                SELECT id, user_id, attempt, retry_count FROM moved
                """,
                params,
            )
            rows = list(cur.fetchall())
            if retried:  # the first try may have committed: its calls are this run's already
                cur.execute(
                    "SELECT id, user_id, attempt, retry_count FROM call_records WHERE id = ANY(%(ids)s) "
                    "AND status = 'TRANSCRIBING' AND claim_id = %(holder)s AND callback_state IS NULL",
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

        def requeue(cur: psycopg.Cursor[dict[str, Any]], retried: bool) -> bool:
            cur.execute(
                """
                WITH moved AS (
                    UPDATE call_records SET status = 'QUEUED', error_reason = NULL,
                        retry_count = retry_count + 1,
                        retry_after = now() + make_interval(secs => %(delay)s)
                    WHERE id = %(call_id)s AND status IN ('TRANSCRIBING', 'ANALYZING')
                      AND attempt = %(attempt)s AND retry_count = %(retry_count)s
                    RETURNING id, user_id, retry_count
                )
                INSERT INTO call_processing_events (call_id, user_id, stage, status, error_code, error_message)
                SELECT id, user_id, %(stage)s, %(event_status)s, %(error_reason)s,
                       'status -> QUEUED (retry ' || retry_count || ' after ' || %(delay)s::int || ' s)'
                FROM moved
                RETURNING call_id
                """,
                {
                    "call_id": call_id,
                    "attempt": attempt,
                    "retry_count": retry_count,
                    "delay": delay_seconds,
                    "error_reason": error_reason,
                    "stage": Stage.STATUS.value,
                    "event_status": EventStatus.FAILED.value,
                },
            )
            if cur.fetchone() is not None:
                return True
            return retried and _moved_already(cur, call_id, CallStatus.QUEUED, attempt)

        return self.run(requeue)

    def silent_in_flight_holders(self, silent_since: datetime) -> list[UUID]:
        """The holders (run or batch ids) of calls mid-flight that have shown no sign of life (a status
        move or a heartbeat) since ``silent_since``."""
        rows = self.query(
            "SELECT DISTINCT claim_id FROM call_records "
            "WHERE status IN ('TRANSCRIBING', 'ANALYZING') AND claim_id IS NOT NULL AND updated_at < %s",
            (silent_since,),
        )
        return [row["claim_id"] for row in rows]

    def calls_held_by(self, holder_id: UUID) -> list[CallRecord]:
        """The calls whose claim is ``holder_id``: a pickup batch's claimed calls, or a run's taken ones."""
        rows = self.query(f"SELECT {_CALL_COLUMNS} FROM call_records WHERE claim_id = %s", (holder_id,))
        return [_call(row) for row in rows]

    def claim_queued(self, batch_id: UUID, limit: int) -> list[ClaimedCall]:
        """Atomically claim up to ``limit`` unclaimed QUEUED calls, oldest first.

        Concurrent claimers skip each other's rows (SKIP LOCKED), so no call is claimed twice.
        """
        rows = self.query(
            """
            UPDATE call_records SET claim_id = %(batch)s, claimed_at = now(), attempt = attempt + 1
            WHERE id IN (
                SELECT id FROM call_records
                WHERE status = 'QUEUED' AND claim_id IS NULL AND (retry_after IS NULL OR retry_after <= now())
                ORDER BY created_at, id
                LIMIT %(limit)s
                FOR UPDATE SKIP LOCKED
            )
            RETURNING id, user_id, attempt, retry_count, created_at
            """,
            {"batch": batch_id, "limit": limit},
        )
        rows.sort(key=lambda row: (row["created_at"], row["id"]))
        return [claimed_call(row) for row in rows]

    def release_claim(self, batch_id: UUID, *, max_unstarted_pickups: int, error_reason: str) -> ClaimRelease:
        """Give a batch's calls that its run never started back to their pickup: QUEUED calls, and
        delivered callbacks waiting to resume.

        A call that reaches ``max_unstarted_pickups`` claims in a row without starting becomes FAILED
        with ``error_reason`` instead (with its event row), so a run that never starts cannot hold a
        call in a claim-and-release loop.
        """
        rows = self.query(
            """
            WITH unstarted AS (
                SELECT id, unstarted_pickups + 1 >= %(limit)s AS exhausted FROM call_records
                WHERE claim_id = %(batch)s
                  AND (status = 'QUEUED' OR (status = 'TRANSCRIBING' AND callback_state = 'RECEIVED'))
                FOR UPDATE
            ), released AS (
                UPDATE call_records call SET claim_id = NULL, claimed_at = NULL,
                                             unstarted_pickups = call.unstarted_pickups + 1
                FROM unstarted WHERE call.id = unstarted.id AND NOT unstarted.exhausted
                RETURNING call.id
            ), failed AS (
                UPDATE call_records call SET status = 'FAILED', error_reason = %(error_reason)s
                FROM unstarted WHERE call.id = unstarted.id AND unstarted.exhausted
                RETURNING call.id, call.user_id
            ), events AS (
                INSERT INTO call_processing_events (call_id, user_id, stage, status, error_code, error_message)
                SELECT id, user_id, %(stage)s, %(event_status)s, %(error_reason)s, 'status -> FAILED' FROM failed
            )
            SELECT (SELECT count(*) FROM released) AS released, (SELECT count(*) FROM failed) AS failed
            """,
            {
                "batch": batch_id,
                "limit": max_unstarted_pickups,
                "error_reason": error_reason,
                "stage": Stage.STATUS.value,
                "event_status": EventStatus.FAILED.value,
            },
        )
        return ClaimRelease(released=int(rows[0]["released"]), failed=int(rows[0]["failed"]))

    def queued_claims_older_than(self, claimed_before: datetime) -> list[UUID]:
        """Batch ids holding QUEUED calls claimed before the given time (candidates for release)."""
        rows = self.query(
            "SELECT DISTINCT claim_id FROM call_records "
            "WHERE status = 'QUEUED' AND claim_id IS NOT NULL AND claimed_at < %s",
            (claimed_before,),
        )
        return [row["claim_id"] for row in rows]

    def heartbeat(self, call_ids: Iterable[UUID]) -> None:
        """Show progress on running calls (bumps updated_at, which the stale sweeper reads)."""
        ids = list(call_ids)
        if ids:
            self.query(
                "UPDATE call_records SET updated_at = now() "
                "WHERE id = ANY(%s) AND status IN ('TRANSCRIBING', 'ANALYZING')",
                (ids,),
            )

    # --- artifacts ------------------------------------------------------------------------------
    def upsert_artifact(
        self,
        call_id: UUID,
        artifact_type: ArtifactType,
        *,
        storage_key: str,
        content_type: str,
        byte_size: int,
        schema_version: int | None = None,
    ) -> None:
        """Register an artifact; a rewrite replaces the (call, type) row in place."""
        self.query(
            """
            INSERT INTO call_artifacts (call_id, artifact_type, storage_key, content_type, byte_size,
                                        schema_version)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (call_id, artifact_type) DO UPDATE
                SET storage_key = EXCLUDED.storage_key, content_type = EXCLUDED.content_type,
                    byte_size = EXCLUDED.byte_size, schema_version = EXCLUDED.schema_version,
                    created_at = now()
            """,
            (call_id, artifact_type.value, storage_key, content_type, byte_size, schema_version),
        )

    def get_artifacts(self, call_id: UUID) -> dict[ArtifactType, ArtifactRecord]:
        rows = self.query(f"SELECT {_ARTIFACT_COLUMNS} FROM call_artifacts WHERE call_id = %s", (call_id,))
        return {ArtifactType(row["artifact_type"]): _artifact(row) for row in rows}

    def recent_artifacts(self, artifact_type: ArtifactType, limit: int) -> list[ArtifactRecord]:
        rows = self.query(
            f"SELECT {_ARTIFACT_COLUMNS} FROM call_artifacts WHERE artifact_type = %s "
            "ORDER BY created_at DESC, id LIMIT %s",
            (artifact_type.value, limit),
        )
        return [_artifact(row) for row in rows]

    def delete_artifact(self, call_id: UUID, artifact_type: ArtifactType) -> bool:
        rows = self.query(
            "DELETE FROM call_artifacts WHERE call_id = %s AND artifact_type = %s RETURNING id",
            (call_id, artifact_type.value),
        )
        return bool(rows)

    # --- events ---------------------------------------------------------------------------------
    def record_events(self, events: Sequence[ProcessingEvent]) -> None:
        if not events:
            return

        def insert(cur: psycopg.Cursor[dict[str, Any]], retried: bool) -> None:
            cur.executemany(
                    """
                    INSERT INTO call_processing_events (call_id, user_id, stage, status, provider,
                        duration_ms, error_code, error_message)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                    """,
                    [
                        (e.call_id, e.user_id, e.stage, e.status, e.provider, e.duration_ms, e.error_code,
                         e.error_message)
                        for e in events
                    ],
            )  # fmt: skip

        self.run(insert)

    def list_events(self, call_id: UUID) -> list[ProcessingEvent]:
        rows = self.query(
            "SELECT call_id, user_id, stage, status, provider, duration_ms, error_code, error_message, created_at "
            "FROM call_processing_events WHERE call_id = %s ORDER BY created_at, id",
            (call_id,),
        )
        return [ProcessingEvent(**row) for row in rows]

    # --- analysis outputs -----------------------------------------------------------------------
    def replace_ai_outputs(
        self,
        call_id: UUID,
        user_id: UUID,
        *,
        recorded_at: datetime | None,
        action_items: Sequence[ActionItemDraft],
        sentiment: SentimentSummary | None,
    ) -> None:
        """In one transaction: the call's AI action items replaced (MANUAL ones kept) and its sentiment
        summary upserted (or removed when the analysis has none)."""

        def replace(cur: psycopg.Cursor[dict[str, Any]], retried: bool) -> None:
            cur.execute("DELETE FROM action_items WHERE call_record_id = %s AND source = 'AI'", (call_id,))
            cur.executemany(
                """
                INSERT INTO action_items (call_record_id, title, description, due_date, priority, status, source,
                    intent, intent_metadata_json, owner_speaker_id, owner_speaker_label, owner_display_name,
                    owner_role, source_segment_ids_json, source_text)
                VALUES (%s, %s, %s, %s, %s, 'OPEN', 'AI', %s, %s, %s, %s, %s, %s, %s, %s)
                """,
                [
                    (
                        call_id, item.title, item.description, item.due_date, _value(item.priority),
                        _value(item.intent), _jsonb(item.intent_metadata_json), item.owner_speaker_id,
                        item.owner_speaker_label, item.owner_display_name, _value(item.owner_role),
                        Jsonb(item.source_segment_ids_json), item.source_text,
                    )
                    for item in action_items
                ],
            )  # fmt: skip
            if sentiment is None:
                cur.execute("DELETE FROM call_sentiment_summary WHERE call_record_id = %s", (call_id,))
                return
            cur.execute(
                """
                INSERT INTO call_sentiment_summary (call_record_id, user_id, recorded_at, sentiment_overall,
                    user_sentiment, contact_sentiment, tone_overall, tone_formality, tone_energy, tone_pace)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (call_record_id) DO UPDATE SET
                    user_id = EXCLUDED.user_id, recorded_at = EXCLUDED.recorded_at,
                    sentiment_overall = EXCLUDED.sentiment_overall, user_sentiment = EXCLUDED.user_sentiment,
                    contact_sentiment = EXCLUDED.contact_sentiment, tone_overall = EXCLUDED.tone_overall,
                    tone_formality = EXCLUDED.tone_formality, tone_energy = EXCLUDED.tone_energy,
                    tone_pace = EXCLUDED.tone_pace, created_at = now()
                """,
                (
                    call_id, user_id, recorded_at, _value(sentiment.sentiment_overall),
                    _value(sentiment.user_sentiment), _value(sentiment.contact_sentiment),
                    _value(sentiment.tone_overall), _value(sentiment.tone_formality),
                    _value(sentiment.tone_energy), _value(sentiment.tone_pace),
                ),
            )  # fmt: skip

        self.run(replace)

    def list_action_items(self, call_id: UUID) -> list[dict[str, Any]]:
        return self.query(
            "SELECT title, description, due_date, priority, status, source, intent, intent_metadata_json, "
            "owner_speaker_id, owner_speaker_label, owner_display_name, owner_role, source_segment_ids_json, "
            "source_text FROM action_items WHERE call_record_id = %s ORDER BY created_at, id",
            (call_id,),
        )

    def get_sentiment_summary(self, call_id: UUID) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM call_sentiment_summary WHERE call_record_id = %s", (call_id,))
        return rows[0] if rows else None

    def record_llm_usage(self, call_id: UUID, usage: LlmUsage) -> None:
        self.query(
            """
            INSERT INTO call_llm_usage (call_id, model, prompt_tokens, completion_tokens, cached_tokens,
                                        estimated_cost_usd, request_id)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (call_id) DO UPDATE SET
                model = EXCLUDED.model, prompt_tokens = EXCLUDED.prompt_tokens,
                completion_tokens = EXCLUDED.completion_tokens, cached_tokens = EXCLUDED.cached_tokens,
                estimated_cost_usd = EXCLUDED.estimated_cost_usd, request_id = EXCLUDED.request_id,
                updated_at = now()
            """,
            (
                call_id, usage.model, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens,
                usage.estimated_cost_usd, usage.request_id,
            ),
        )  # fmt: skip

    def get_llm_usage(self, call_id: UUID) -> LlmUsage | None:
        rows = self.query(
            "SELECT model, prompt_tokens, completion_tokens, cached_tokens, estimated_cost_usd::float8 "
            "AS estimated_cost_usd, request_id FROM call_llm_usage WHERE call_id = %s",
            (call_id,),
        )
        return LlmUsage(**rows[0]) if rows else None

    # --- feature flags and voice profiles -------------------------------------------------------
    def get_feature_flags(self) -> dict[str, bool]:
        return {row["flag_key"]: row["enabled"] for row in self.query("SELECT flag_key, enabled FROM feature_flags")}

    def set_feature_flag(self, flag_key: str, enabled: bool, *, updated_by: str) -> None:
        self.query(
            """
            INSERT INTO feature_flags (flag_key, enabled, updated_by) VALUES (%s, %s, %s)
            ON CONFLICT (flag_key) DO UPDATE
                SET enabled = EXCLUDED.enabled, updated_by = EXCLUDED.updated_by, updated_at = now()
            """,
            (flag_key, enabled, updated_by),
        )

    def get_voice_profile(self, user_id: UUID) -> VoiceProfile | None:
        rows = self.query(
            "SELECT user_id, provider, model, embedding_json, consent_version, sample_duration_seconds, "
            "created_at, updated_at FROM user_voice_profiles WHERE user_id = %s",
            (user_id,),
        )
        return VoiceProfile(**rows[0]) if rows else None

    def save_voice_profile(
        self,
        user_id: UUID,
        *,
        provider: str,
        model: str | None,
        embedding_json: object,
        consent_version: str,
        sample_duration_seconds: float | None = None,
    ) -> VoiceProfile:
        """Create the user's profile, or replace it (at most one per user); the stored row."""
        rows = self.query(
            """
            INSERT INTO user_voice_profiles
                (user_id, provider, model, embedding_json, consent_version, sample_duration_seconds)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (user_id) DO UPDATE
                SET provider = EXCLUDED.provider, model = EXCLUDED.model,
                    embedding_json = EXCLUDED.embedding_json, consent_version = EXCLUDED.consent_version,
                    sample_duration_seconds = EXCLUDED.sample_duration_seconds, updated_at = now()
            RETURNING user_id, provider, model, embedding_json, consent_version, sample_duration_seconds,
                      created_at, updated_at
            """,
            (user_id, provider, model, Jsonb(embedding_json), consent_version, sample_duration_seconds),
        )
        return VoiceProfile(**rows[0])

    def delete_voice_profile(self, user_id: UUID) -> bool:
        """Whether the user had a profile (it is gone either way)."""
        return bool(self.query("DELETE FROM user_voice_profiles WHERE user_id = %s RETURNING id", (user_id,)))


def claimed_call(row: dict[str, Any]) -> ClaimedCall:
    return ClaimedCall(
        call_id=row["id"], user_id=row["user_id"], attempt=row["attempt"], retry_count=row.get("retry_count", 0)
    )


def _moved_already(cur: psycopg.Cursor[dict[str, Any]], call_id: UUID, target: CallStatus, attempt: int) -> bool:
    """Whether an earlier try of this very move committed (only its answer was lost)."""
    cur.execute(
        "SELECT 1 FROM call_records WHERE id = %s AND status = %s AND attempt = %s", (call_id, target.value, attempt)
    )
    return cur.fetchone() is not None


def _value(member: Enum | None) -> Any:
    return member.value if member is not None else None


def _jsonb(value: object | None) -> Jsonb | None:
    return Jsonb(value) if value is not None else None


def _call(row: dict[str, Any]) -> CallRecord:
    return CallRecord(**{**row, "status": CallStatus(row["status"]), "direction": Direction(row["direction"])})


def _artifact(row: dict[str, Any]) -> ArtifactRecord:
    return ArtifactRecord(**{**row, "artifact_type": ArtifactType(row["artifact_type"])})
