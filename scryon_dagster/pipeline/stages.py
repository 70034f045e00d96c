"""Stage bookkeeping for one call: a STARTED and a terminal event per stage, with duration, provider
and error code (never content); and for a batch, the thread that writes those events as they happen
and heartbeats the calls in flight."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from uuid import UUID

from scryon_dagster.adapters.db.records import ProcessingEvent
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.domain.calls import ErrorCode, EventStatus, Stage

logger = logging.getLogger(__name__)


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
    """One call's stage events, handed to ``sink`` as they happen."""

    def __init__(self, call_id: UUID, user_id: UUID | None, sink: Callable[[ProcessingEvent], None]) -> None:
        self.call_id = call_id
        self.user_id = user_id
        self._sink = sink
        self.reasons: dict[Stage, str] = {}
        """Each skipped or failed stage's last reason or error code (why an output may be missing)."""

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

    def fell_back(self, stage: Stage, *, provider: str | None = None, cause: str) -> None:
        """A fallback was taken (``stage`` names it) because of ``cause``, an error code."""
        self._add(stage, EventStatus.COMPLETED, provider, error_code=cause)

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
        if reason := error_code or error_message:
            self.reasons[stage] = reason
        self._sink(
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


class BatchBookkeeping:
    """A batch's background writer: stage events reach the database within ``EVENT_FLUSH_SECONDS`` of
    happening (so a call in flight, or in a run that dies, shows its trail) in one insert for the whole
    batch, and the calls in flight heartbeat every ``HEARTBEAT_SECONDS`` (crash recovery and the stale sweep read it).

    A write that fails (the database away for longer than its retries) is tried again at the next
    round; the events still unwritten when the batch ends are written then, or logged as lost.
    """

    EVENT_FLUSH_SECONDS = 0.5
    HEARTBEAT_SECONDS = 10.0
    """Often enough that a call silent for a few heartbeats is known to have lost its run."""

    def __init__(self, db: CallDatabase, in_flight: Iterable[UUID]) -> None:
        self._db = db
        self._in_flight = set(in_flight)
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[ProcessingEvent] = queue.SimpleQueue()
        self._unwritten: list[ProcessingEvent] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="scryon-bookkeeping", daemon=True)

    def events(self, event: ProcessingEvent) -> None:
        """The sink for the batch's stage logs (thread-safe)."""
        self._queue.put(event)

    def finished(self, call_id: UUID) -> None:
        with self._lock:
            self._in_flight.discard(call_id)

    def __enter__(self) -> BatchBookkeeping:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._write_events()
        if self._unwritten:
            logger.warning("%d processing events not recorded (call database unavailable)", len(self._unwritten))

    def _loop(self) -> None:
        next_heartbeat = time.monotonic() + self.HEARTBEAT_SECONDS
        while not self._stop.wait(self.EVENT_FLUSH_SECONDS):
            self._write_events()
            if time.monotonic() >= next_heartbeat:
                next_heartbeat = time.monotonic() + self.HEARTBEAT_SECONDS
                self._heartbeat()

    def _write_events(self) -> None:
        while True:
            try:
                self._unwritten.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if not self._unwritten:
            return
        try:
            self._db.record_events(self._unwritten)
        except Exception as exc:  # kept for the next round; never stop the batch for bookkeeping
            logger.warning("processing events not recorded yet (%s)", type(exc).__name__)
            return
        self._unwritten = []

    def _heartbeat(self) -> None:
        with self._lock:
            in_flight = list(self._in_flight)
        try:
            self._db.heartbeat(in_flight)
        except Exception as exc:  # a missed heartbeat only risks a sweep, which re-queues the call
            logger.warning("heartbeat failed (%s)", type(exc).__name__)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
