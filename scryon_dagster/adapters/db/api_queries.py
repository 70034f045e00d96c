"""SQL behind the HTTP API: signing users in, the user's call list and status poll, upload idempotency keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from scryon_dagster.adapters.db.repository import CallDatabase, DatabaseError
from scryon_dagster.domain.calls import CallStatus, Direction

_BIND_ATTEMPTS = 3
IDEMPOTENCY_KEY_TTL_HOURS = 24
"""How long an upload's idempotency key replays its call, as in the reference; prune_history then
forgets the key, and a key past it binds the next upload afresh even before that."""


@dataclass(frozen=True)
class ListPosition:
    """Where a page of the call list (newest first) ended: the keyset cursor."""

    created_at: datetime
    call_id: UUID


@dataclass(frozen=True)
class CallSummary:
    id: UUID
    title: str | None
    contact_name: str | None
    direction: Direction
    status: CallStatus
    duration_seconds: float | None
    created_at: datetime
    action_item_count: int
    first_action_title: str | None
    """The oldest action item that is not dismissed."""

    @property
    def position(self) -> ListPosition:
        return ListPosition(self.created_at, self.id)


@dataclass(frozen=True)
class ApiUser:
    """The ``users`` row a request acts for."""

    id: UUID
    disabled: bool


class ApiQueries:
    def __init__(self, db: CallDatabase) -> None:
        self._db = db

    def sign_in(self, external_user_id: str, *, email: str | None = None, display_name: str | None = None) -> ApiUser:
        """The user with this external id, created on first sight. A new email or name (from the ID
        token) is stored; an absent one leaves the stored value alone."""
        found = self._db.query(
            "SELECT id, disabled, email, display_name FROM users WHERE external_user_id = %s", (external_user_id,)
        )
        if found and email in (None, found[0]["email"]) and display_name in (None, found[0]["display_name"]):
            return ApiUser(id=found[0]["id"], disabled=found[0]["disabled"])
        # Only first sight or a changed profile writes, so an ordinary request costs one read.
        rows = self._db.query(
            """
            INSERT INTO users (external_user_id, email, display_name) VALUES (%s, %s, %s)
            ON CONFLICT (external_user_id) DO UPDATE
                SET email = COALESCE(EXCLUDED.email, users.email),
                    display_name = COALESCE(EXCLUDED.display_name, users.display_name),
                    updated_at = now()
            RETURNING id, disabled
            """,
            (external_user_id, email, display_name),
        )
        return ApiUser(id=rows[0]["id"], disabled=rows[0]["disabled"])

    def list_calls(
        self, user_id: UUID, *, limit: int, status: CallStatus | None = None, after: ListPosition | None = None
    ) -> list[CallSummary]:
        """The user's calls, newest first, starting after ``after`` (served by the (user, created_at) index)."""
        rows = self._db.query(
            """
            SELECT c.id, c.title, c.contact_name, c.direction, c.status, c.duration_seconds, c.created_at,
                   peek.action_item_count, peek.first_action_title
            FROM call_records c
            CROSS JOIN LATERAL (
                SELECT count(*) AS action_item_count,
                       (array_agg(a.title ORDER BY a.created_at, a.id))[1] AS first_action_title
                FROM action_items a
                WHERE a.call_record_id = c.id AND a.status <> 'DISMISSED'
            ) peek
            WHERE c.user_id = %(user_id)s
              AND (%(status)s::text IS NULL OR c.status = %(status)s::text)
              AND (%(after_created)s::timestamptz IS NULL
                   OR (c.created_at, c.id) < (%(after_created)s::timestamptz, %(after_id)s::uuid))
            ORDER BY c.created_at DESC, c.id DESC
            LIMIT %(limit)s
            """,
            {
                "user_id": user_id,
                "status": status.value if status is not None else None,
                "after_created": after.created_at if after is not None else None,
                "after_id": after.call_id if after is not None else None,
                "limit": limit,
            },
        )
        return [
            CallSummary(
                **{**row, "direction": Direction(row["direction"]), "status": CallStatus(row["status"])},
            )
            for row in rows
        ]

    def call_statuses(self, user_id: UUID, call_ids: Sequence[UUID]) -> dict[UUID, CallStatus]:
        """Statuses of those of ``call_ids`` that belong to the user."""
        rows = self._db.query(
            "SELECT id, status FROM call_records WHERE user_id = %s AND id = ANY(%s)",
            (user_id, list(call_ids)),
        )
        return {row["id"]: CallStatus(row["status"]) for row in rows}

    def call_for_idempotency_key(self, user_id: UUID, key: str) -> UUID | None:
        """The call ``key`` was bound to within IDEMPOTENCY_KEY_TTL_HOURS."""
        rows = self._db.query(
            "SELECT call_id FROM upload_idempotency_keys WHERE user_id = %s AND idempotency_key = %s "
            "AND created_at > now() - make_interval(hours => %s)",
            (user_id, key, IDEMPOTENCY_KEY_TTL_HOURS),
        )
        return rows[0]["call_id"] if rows else None

    def remember_idempotency_key(self, user_id: UUID, key: str, call_id: UUID) -> UUID:
        """Bind ``key`` to ``call_id`` unless another upload bound it first; return the bound call."""
        # A concurrent binder's row is invisible to the statement that lost the race, and the
        # winner's call may be deleted meanwhile: read again in a new statement, a few times at most.
        for _ in range(_BIND_ATTEMPTS):
            # An expired binding (not yet pruned) is taken over, as if it were gone.
            inserted = self._db.query(
                """
                INSERT INTO upload_idempotency_keys AS k (user_id, idempotency_key, call_id) VALUES (%s, %s, %s)
                ON CONFLICT (user_id, idempotency_key) DO UPDATE SET call_id = EXCLUDED.call_id, created_at = now()
                    WHERE k.created_at <= now() - make_interval(hours => %s)
                RETURNING call_id
                """,
                (user_id, key, call_id, IDEMPOTENCY_KEY_TTL_HOURS),
            )
            if inserted:
                return call_id
            bound = self.call_for_idempotency_key(user_id, key)
            if bound is not None:
                return bound
        raise DatabaseError("idempotency key could not be bound (concurrent churn)")
