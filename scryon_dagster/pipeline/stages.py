"""Stage bookkeeping for one call: a STARTED and a terminal event per stage, with duration, provider
and error code (never content), written in one round trip when the call finishes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from uuid import UUID

from scryon_dagster.adapters.db.records import ProcessingEvent
from scryon_dagster.domain.calls import ErrorCode, EventStatus, Stage


class StageFailure(Exception):
    """A hard stage failed: the call becomes FAILED with ``code``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class StageHandle:
    """Lets a stage body report a soft failure (the call continues) and read its duration."""

    def __init__(self) -> None:
        self.soft_code: str | None = None
        self.elapsed_ms = 0

    def soft_failure(self, code: str) -> None:
        self.soft_code = code


class StageLog:
    def __init__(self, call_id: UUID, user_id: UUID | None) -> None:
        self.call_id = call_id
        self.user_id = user_id
        self._events: list[ProcessingEvent] = []

    @contextmanager
    def stage(self, stage: Stage, *, provider: str | None = None) -> Iterator[StageHandle]:
        handle = StageHandle()
        started_at = datetime.now(UTC)
        started = time.monotonic()
        self._add(stage, EventStatus.STARTED, provider, started_at)
        try:
            yield handle
        except StageFailure as failure:
            handle.elapsed_ms = _ms_since(started)
            self._add(stage, EventStatus.FAILED, provider, error_code=failure.code, duration_ms=handle.elapsed_ms)
            raise
        except Exception:
            handle.elapsed_ms = _ms_since(started)
            self._add(
                stage, EventStatus.FAILED, provider, error_code=ErrorCode.INTERNAL_ERROR, duration_ms=handle.elapsed_ms
            )
            raise
        handle.elapsed_ms = _ms_since(started)
        status = EventStatus.FAILED if handle.soft_code else EventStatus.COMPLETED
        self._add(stage, status, provider, error_code=handle.soft_code, duration_ms=handle.elapsed_ms)

    def skipped(self, stage: Stage, *, provider: str | None = None, reason: str) -> None:
        self._add(stage, EventStatus.SKIPPED, provider, error_message=reason)

    def drain(self) -> list[ProcessingEvent]:
        events, self._events = self._events, []
        return events

    def _add(
        self,
        stage: Stage,
        status: EventStatus,
        provider: str | None,
        created_at: datetime | None = None,
        *,
        error_code: str | None = None,
        error_message: str | None = None,
        duration_ms: int | None = None,
    ) -> None:
        self._events.append(
            ProcessingEvent(
                call_id=self.call_id,
                user_id=self.user_id,
                stage=stage.value,
                status=status.value,
                provider=provider,
                duration_ms=duration_ms,
                error_code=error_code,
                error_message=error_message,
                created_at=created_at or datetime.now(UTC),
            )
        )


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
