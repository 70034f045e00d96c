"""The simulator's controllable state: injected faults, rate limits, latency profiles and statistics.

All of it lives on the server's event loop (touched only from request handlers), so it needs no locks.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from scryon_dagster.simulator.samples import DURATION_MATCH_TOLERANCE_SECONDS


class Provider(StrEnum):
    LEMONFOX = "lemonfox"
    PYANNOTE = "pyannote"
    LLM = "llm"


class FaultName(StrEnum):
    HTTP_429 = "http_429"
    HTTP_500 = "http_500"
    HTTP_503 = "http_503"
    HTTP_400 = "http_400"
    HTTP_402 = "http_402"
    HANG = "hang"
    MALFORMED_JSON = "malformed_json"
    EMPTY_TRANSCRIPT = "empty_transcript"
    JOB_FAILED = "job_failed"
    JOB_CANCELED = "job_canceled"
    REFUSAL = "refusal"
    FINISH_LENGTH = "finish_length"
    SLOW_POLL = "slow_poll"
    INSUFFICIENT_QUOTA = "insufficient_quota"
    SLOW = "slow"
    TRUNCATED_BODY = "truncated_body"


# Faults served instead of (or before) any answer: an error status or a request that never answers.
REQUEST_FAULTS = frozenset(
    {
        FaultName.HTTP_429,
        FaultName.HTTP_500,
        FaultName.HTTP_503,
        FaultName.HTTP_400,
        FaultName.HTTP_402,
        FaultName.HANG,
        FaultName.INSUFFICIENT_QUOTA,
    }
)
# Faults attached to a pyannote job when it is created; they show when the job is polled.
JOB_FAULTS = frozenset({FaultName.JOB_FAILED, FaultName.JOB_CANCELED, FaultName.SLOW_POLL, FaultName.MALFORMED_JSON})
# Faults that delay a request and then let it answer normally.
DELAY_FAULTS = frozenset({FaultName.SLOW})
# Faults whose 200 answer carries a body the client cannot parse.
BROKEN_BODY_FAULTS = frozenset({FaultName.MALFORMED_JSON, FaultName.TRUNCATED_BODY})
_EVERY_PROVIDER_FAULTS = (REQUEST_FAULTS - {FaultName.INSUFFICIENT_QUOTA}) | DELAY_FAULTS | {FaultName.TRUNCATED_BODY}
FAULTS_BY_PROVIDER: dict[Provider, frozenset[FaultName]] = {
    Provider.LEMONFOX: _EVERY_PROVIDER_FAULTS | {FaultName.MALFORMED_JSON, FaultName.EMPTY_TRANSCRIPT},
    Provider.PYANNOTE: _EVERY_PROVIDER_FAULTS | JOB_FAULTS,
    Provider.LLM: _EVERY_PROVIDER_FAULTS
    | {FaultName.INSUFFICIENT_QUOTA, FaultName.MALFORMED_JSON, FaultName.REFUSAL, FaultName.FINISH_LENGTH},
}
ALWAYS = -1
DEFAULT_RETRY_AFTER_SECONDS = 1.0
DEFAULT_SLOW_SECONDS = 5.0
MAX_SLOW_SECONDS = 600.0


@dataclass
class Fault:
    provider: Provider
    name: FaultName
    times: int = 1
    """How many more requests get this fault; -1 means every matching request."""
    match_audio_seconds: float | None = None
    match_call_id: str | None = None
    retry_after_seconds: float | None = None
    """``Retry-After`` of an ``http_429`` (default 1 s) or ``http_503`` (none unless set)."""
    probability: float = 1.0
    """The share of matching requests that get this fault (seeded draw, see :class:`FaultBook`)."""
    delay_seconds: float = DEFAULT_SLOW_SECONDS
    """How long a ``slow`` fault holds the request before answering normally."""

    def matches(self, audio_seconds: float | None, call_id: str | None) -> bool:
        if self.match_audio_seconds is not None and (
            audio_seconds is None or abs(audio_seconds - self.match_audio_seconds) > DURATION_MATCH_TOLERANCE_SECONDS
        ):
            return False
        return self.match_call_id is None or self.match_call_id == call_id

    def describe(self) -> dict[str, Any]:
        return {
            "provider": self.provider.value,
            "fault": self.name.value,
            "times": self.times,
            "match_audio_seconds": self.match_audio_seconds,
            "match_call_id": self.match_call_id,
            "retry_after_seconds": self.retry_after_seconds,
            "probability": self.probability,
            "delay_seconds": self.delay_seconds,
        }


class FaultBook:
    """Registered faults, served first-registered-first to the requests they match.

    Each request that some fault matches draws one number from a seeded generator; the matching faults,
    in registration order, own consecutive slices of [0, 1) as wide as their ``probability``. So a
    fault of probability 1 (the default) always wins, and ``http_500`` at 0.15 followed by ``http_503``
    at 0.15 serve 15 % of the requests each. The same seed and the same request order give the same
    faults; truncation points come from the same generator.
    """

    def __init__(self, seed: int = 0) -> None:
        self._faults: list[Fault] = []
        self._rng = random.Random(seed)

    def reseed(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def add(self, fault: Fault) -> None:
        if fault.name not in FAULTS_BY_PROVIDER[fault.provider]:
            raise ValueError(f"fault {fault.name.value} does not apply to {fault.provider.value}")
        if fault.times == 0 or fault.times < ALWAYS:
            raise ValueError("times must be a positive count or -1 (always)")
        if not 0 < fault.probability <= 1:
            raise ValueError("probability must be greater than 0 and at most 1")
        if not 0 < fault.delay_seconds <= MAX_SLOW_SECONDS:
            raise ValueError(f"delay_seconds must be greater than 0 and at most {MAX_SLOW_SECONDS:g}")
        self._faults.append(fault)

    def clear(self, provider: Provider | None = None) -> None:
        self._faults = [fault for fault in self._faults if provider is not None and fault.provider != provider]

    def take(
        self,
        provider: Provider,
        applicable: frozenset[FaultName],
        *,
        audio_seconds: float | None = None,
        call_id: str | None = None,
    ) -> Fault | None:
        candidates = [
            fault
            for fault in self._faults
            if fault.provider == provider and fault.name in applicable and fault.matches(audio_seconds, call_id)
        ]
        if not candidates:
            return None
        roll = self._rng.random()
        share_end = 0.0
        for fault in candidates:
            share_end += fault.probability
            if roll < share_end:
                if fault.times != ALWAYS:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                return fault
        return None

    def truncate(self, body: bytes) -> bytes:
        """``body`` cut somewhere in its middle fifth to four-fifths: never empty, never whole."""
        if len(body) < 2:
            return b""
        cut = round(len(body) * self._rng.uniform(0.2, 0.8))
        return body[: min(max(cut, 1), len(body) - 1)]

    def describe(self) -> list[dict[str, Any]]:
        return [fault.describe() for fault in self._faults]


class SlidingWindowLimiter:
    """At most ``per_minute`` admitted requests in any 60 s window."""

    WINDOW_SECONDS = 60.0

    def __init__(self, per_minute: int) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self._admitted: deque[float] = deque()

    def admit(self) -> float | None:
        """None when admitted, else the seconds until a slot frees up."""
        now = time.monotonic()
        while self._admitted and now - self._admitted[0] >= self.WINDOW_SECONDS:
            self._admitted.popleft()
        if len(self._admitted) < self.per_minute:
            self._admitted.append(now)
            return None
        return self.WINDOW_SECONDS - (now - self._admitted[0])


@dataclass
class Stats:
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)
    faults_served: Counter[tuple[str, str]] = field(default_factory=Counter)
    deliveries: Counter[tuple[str, str]] = field(default_factory=Counter)
    in_flight: Counter[str] = field(default_factory=Counter)
    peak_in_flight: Counter[str] = field(default_factory=Counter)
    by_subject: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(subject, provider, "requests" or "answers") -> count; see :meth:`count_for_subject`."""

    def count_for_subject(self, subject: str | None, provider: str, *, answered: bool = False) -> None:
        """Count a request of ``subject`` (a call id, or ``audio:<seconds>`` when the request names no
        call), or with ``answered`` a usable answer: a complete transcription or completion, or a
        diarization job's intact result. A benchmark compares these per call with what one fault-free
        call needs, to find provider work paid twice."""
        if subject is not None:
            self.by_subject[(subject, provider, "answers" if answered else "requests")] += 1

    def subjects(self) -> dict[str, dict[str, dict[str, int]]]:
        by_subject: dict[str, dict[str, dict[str, int]]] = {}
        for (subject, provider, what), count in sorted(self.by_subject.items()):
            by_subject.setdefault(subject, {}).setdefault(provider, {})[what] = count
        return by_subject

    def request_started(self, provider: str) -> None:
        self.in_flight[provider] += 1
        self.peak_in_flight[provider] = max(self.peak_in_flight[provider], self.in_flight[provider])

    def request_finished(self, provider: str) -> None:
        self.in_flight[provider] -= 1

    def snapshot(self) -> dict[str, Any]:
        by_provider: dict[str, dict[str, int]] = {}
        for (provider, route), count in sorted(self.requests.items()):
            by_provider.setdefault(provider, {})[route] = count
        faults: dict[str, dict[str, int]] = {}
        for (provider, name), count in sorted(self.faults_served.items()):
            faults.setdefault(provider, {})[name] = count
        deliveries: dict[str, dict[str, int]] = {}
        for (kind, outcome), count in sorted(self.deliveries.items()):
            deliveries.setdefault(kind, {})[outcome] = count
        return {
            "requests": by_provider,
            "requests_total": {provider: sum(routes.values()) for provider, routes in by_provider.items()},
            "rate_limited": dict(self.rate_limited),
            "faults_served": faults,
            "deliveries": deliveries,
            "peak_in_flight": {provider: peak for provider, peak in sorted(self.peak_in_flight.items()) if peak},
        }

    def reset(self) -> None:
        self.requests.clear()
        self.rate_limited.clear()
        self.faults_served.clear()
        self.deliveries.clear()
        self.by_subject.clear()
        # Requests still being served stay counted; the peak restarts from them.
        self.peak_in_flight = Counter(self.in_flight)


@dataclass(frozen=True)
class LatencyProfile:
    """Simulated provider processing time. ``fast`` is for tests; ``realistic`` scales with the audio."""

    name: str
    transcription_base: float
    transcription_per_audio_second: float
    job_queue: float
    job_base: float
    job_per_audio_second: float
    llm_range: tuple[float, float]
    delivery_retry_spacing: float

    def transcription_seconds(self, audio_seconds: float) -> float:
        return self.transcription_base + audio_seconds * self.transcription_per_audio_second

    def job_seconds(self, audio_seconds: float) -> float:
        return self.job_base + audio_seconds * self.job_per_audio_second

    def llm_seconds(self, rng: random.Random) -> float:
        return rng.uniform(*self.llm_range)


PROFILES = {
    "fast": LatencyProfile(
        name="fast",
        transcription_base=0.0,
        transcription_per_audio_second=0.0,
        job_queue=0.0,
        job_base=0.05,
        job_per_audio_second=0.0,
        llm_range=(0.0, 0.0),
        delivery_retry_spacing=0.05,
    ),
    "realistic": LatencyProfile(
        name="realistic",
        transcription_base=1.0,
        transcription_per_audio_second=1 / 30,
        job_queue=1.0,
        job_base=2.0,
        job_per_audio_second=1 / 20,
        llm_range=(2.0, 6.0),
        delivery_retry_spacing=1.0,
    ),
}


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` carries whole seconds; round up so honouring it never comes too early."""
    return str(max(0, math.ceil(seconds)))
