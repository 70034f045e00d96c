"""A run worker's memory budget: each call holds an estimate of what it keeps in memory (its transcript,
diarization and analysis; its audio is streamed through files in its own temporary directory, never held
whole: adapters/audio.py), and a call waits when the batch's calls in flight would hold more than the
budget together: the worker's memory setting less what the worker holds before any call."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from scryon_dagster.settings import Settings

MIB = 1024 * 1024
# what a run worker holds before any call (Python, Dagster, the libraries): ~180 MB measured, with room
RUN_WORKER_BASE_MB = 256
# the transcript, diarization and analysis a call holds per second of audio (JSON and its parsed objects)
TRANSCRIPT_BYTES_PER_SECOND = 2_000
# what every call holds whatever its length (its records, the chunks of its audio in flight between a file
# and the object store or a provider, an HTTP client's buffers, a prompt)
CALL_BASE_BYTES = 4 * MIB


def call_footprint(duration_seconds: float | None) -> int:
    """What a call holds at its peak: its transcript, diarization and analysis (its audio stays in files)."""
    return CALL_BASE_BYTES + int((duration_seconds or 0) * TRANSCRIPT_BYTES_PER_SECOND)


def batch_memory_budget(settings: Settings) -> MemoryBudget:
    """The run worker's budget for its calls; large buffers are set to go back to the system when freed,
    so that what the budget gives back is also what the worker's resident memory loses."""
    _return_large_buffers_to_the_system()
    return MemoryBudget((settings.scryon_run_worker_memory_mb - RUN_WORKER_BASE_MB) * MIB)


# glibc's mallopt parameter: allocations from this size get their own mapping, unmapped when freed
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 1 * MIB


def _glibc() -> ctypes.CDLL | None:
    libc = ctypes.CDLL(None)
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


_LIBC = _glibc()


def _return_large_buffers_to_the_system() -> None:
    # glibc raises its mapping threshold to the largest buffer freed so far (up to 32 MiB): a decoded call's
    # buffers then come from the heap, and the heap keeps their pages after they are freed, call after call.
    if _LIBC is not None:
        _LIBC.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)


def _trim_heap() -> None:
    """Hand the heap's free pages back to the system (what smaller buffers left behind)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


class MemoryBudget:
    """A weighted gate: holders together stay within ``capacity`` bytes. One holder larger than the
    whole budget is let in alone, so that no call waits forever."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("the memory budget must be positive")
        self.capacity = capacity
        self._held = 0
        self._peak = 0
        self._changed = threading.Condition()

    @property
    def peak(self) -> int:
        """The most bytes held at once so far."""
        return self._peak

    @contextmanager
    def hold(self, size: int) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: self._held == 0 or self._held + size <= self.capacity)
            self._held += size
            self._peak = max(self._peak, self._held)
        try:
            yield
        finally:
            self._give_back(size)

    def _give_back(self, size: int) -> None:
        _trim_heap()
        with self._changed:
            self._held -= size
            self._changed.notify_all()
