"""A run worker's audio memory budget: calls hold their audio's bytes while they decode and upload it,
and wait when the batch's calls in flight would hold more than the budget together."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

# 16-bit mono PCM at the providers' 16 kHz: what one second of a decoded variant weighs
DECODED_BYTES_PER_SECOND = 16_000 * 2
# the stored recording, its decoded copy inside ffmpeg's output buffer and the preprocessed upload
DECODED_COPIES = 2


def audio_footprint(stored_bytes: int, duration_seconds: float | None) -> int:
    """What a call's audio stages hold at their peak: the recording and its decoded copies."""
    return stored_bytes + int((duration_seconds or 0) * DECODED_BYTES_PER_SECOND * DECODED_COPIES)


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
            with self._changed:
                self._held -= size
                self._changed.notify_all()
