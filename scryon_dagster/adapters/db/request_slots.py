"""A provider's request budget shared by every process: the next free slot lives in one row.

Reserving a slot moves the row's ``next_slot`` one interval on, under the row lock, on the server's
clock (so machines with skewed clocks still agree). The caller sleeps until its slot. A reservation
that would come after the caller's deadline is not taken.
"""

from __future__ import annotations

import time

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.domain.policy import request_interval_seconds

# Takes the next slot unless it lies more than max_wait seconds ahead; returns how long to wait for it.
_RESERVE = """
    INSERT INTO provider_request_slots AS s (provider, next_slot)
    VALUES (%(provider)s, clock_timestamp() + make_interval(secs => %(interval)s))
    ON CONFLICT (provider) DO UPDATE
        SET next_slot = GREATEST(s.next_slot, clock_timestamp()) + make_interval(secs => %(interval)s)
        WHERE GREATEST(s.next_slot, clock_timestamp()) - clock_timestamp()
              <= make_interval(secs => %(max_wait)s)
    RETURNING GREATEST(
        0, EXTRACT(EPOCH FROM (s.next_slot - make_interval(secs => %(interval)s) - clock_timestamp()))
    )::float8 AS wait_seconds
"""


class SharedRequestPacer:
    """Spaces one provider's requests across all processes on the call database (see RequestPacer)."""

    def __init__(self, db: CallDatabase, provider: str, per_minute: int) -> None:
        self._db = db
        self._provider = provider
        self._interval = request_interval_seconds(per_minute)

    def reserve(self, max_wait_seconds: float) -> float | None:
        """Take the next slot and return the seconds until it; None (nothing taken) if that is too far."""
        rows = self._db.query(
            _RESERVE,
            {"provider": self._provider, "interval": self._interval, "max_wait": max(0.0, max_wait_seconds)},
        )
        return float(rows[0]["wait_seconds"]) if rows else None

    def wait_for_turn(self, remaining_seconds: float) -> bool:
        wait = self.reserve(remaining_seconds)
        if wait is None:
            return False
        time.sleep(wait)
        return True
