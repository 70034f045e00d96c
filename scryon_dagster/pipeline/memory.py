"""A run worker's memory budget: each call holds an estimate of what it keeps in memory (its recording,
the decoded copies and the provider outputs while its audio stages run; its transcript and analysis after),
and a call waits when the batch's calls in flight would hold more than the budget together."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from scryon_dagster.settings import Settings

MIB = 1024 * 1024
# 16-bit mono PCM at the providers' 16 kHz: what one second of a decoded variant weighs
DECODED_BYTES_PER_SECOND = 16_000 * 2
# the stored recording, its decoded copy inside ffmpeg's output buffer and the preprocessed upload
DECODED_COPIES = 2
# the transcript, diarization and analysis a call holds per second of audio (JSON and its parsed objects)
TRANSCRIPT_BYTES_PER_SECOND = 2_000
# what every call holds whatever its length (its records, an HTTP client's buffers, a prompt)
CALL_BASE_BYTES = 4 * MIB


def call_footprint(duration_seconds: float | None, *, stored_audio_bytes: int | None) -> int:
    """What a call holds at its peak: with ``stored_audio_bytes`` while its audio stages run (the recording
    and its decoded copies on top), without (None) once they are over."""
    seconds = duration_seconds or 0
    transcript = CALL_BASE_BYTES + int(seconds * TRANSCRIPT_BYTES_PER_SECOND)
    if stored_audio_bytes is None:
        return transcript
    return transcript + stored_audio_bytes + int(seconds * DECODED_BYTES_PER_SECOND * DECODED_COPIES)


def batch_memory_budget(settings: Settings) -> MemoryBudget:
    return MemoryBudget(settings.scryon_batch_audio_memory_mb * MIB)


class MemoryHold:
    """One holder's share of a budget; ``shrink`` gives part of it back early."""

    def __init__(self, budget: MemoryBudget, size: int) -> None:
        self._budget = budget
        self.size = size

    def shrink(self, size: int) -> None:
        if size < self.size:
            self._budget._give_back(self.size - size)
            self.size = size


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
    def hold(self, size: int) -> Iterator[MemoryHold]:
        with self._changed:
            self._changed.wait_for(lambda: self._held == 0 or self._held + size <= self.capacity)
            self._held += size
            self._peak = max(self._peak, self._held)
        held = MemoryHold(self, size)
        try:
            yield held
        finally:
            self._give_back(held.size)

    def _give_back(self, size: int) -> None:
        with self._changed:
            self._held -= size
            self._changed.notify_all()
