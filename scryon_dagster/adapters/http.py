"""HTTP plumbing shared by the provider adapters: deadlines, retries, pacing, concurrency caps.

One :class:`ProviderHttpClient` per provider per process. It wraps a thread-safe ``httpx.Client`` with
a bounded connection pool and a semaphore that caps in-flight requests (held only while a request is
on the wire, never while backing off or between polls). Retries use tenacity with jittered exponential
backoff, bounded by the configured retry count and by the caller's :class:`Deadline`; a rate-limited
answer's ``Retry-After`` / ``retry-after-ms`` is the minimum wait, and a wait that would overrun the
deadline ends the call instead. Reading the answers (error classification, JSON bodies) is in
``http_responses.py``, re-exported here so the provider adapters import one module.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

import httpx
import tenacity

from scryon_dagster.adapters.errors import (
    ProviderError,
    RateLimitedError,
    RetryableProviderError,
)
from scryon_dagster.adapters.http_responses import (
    ANALYSIS_CODES,
    DIARIZATION_CODES,
    TRANSCRIPTION_CODES,
    VOICE_MATCH_CODES,
    StageErrorCodes,
    decode_json_object,
    error_for_response,
    extract_json_member,
    parse_retry_after,
    provider_error_identifiers,
)
from scryon_dagster.domain.policy import request_interval_seconds

__all__ = [
    "ANALYSIS_CODES",
    "DEFAULT_BACKOFF",
    "DIARIZATION_CODES",
    "TRANSCRIPTION_CODES",
    "USER_AGENT",
    "VOICE_MATCH_CODES",
    "AudioTimeout",
    "Backoff",
    "Deadline",
    "Pacer",
    "ProviderClient",
    "ProviderHttpClient",
    "RequestPacer",
    "SentRequest",
    "StageErrorCodes",
    "decode_json_object",
    "error_for_response",
    "extract_json_member",
    "parse_retry_after",
    "provider_error_identifiers",
]

logger = logging.getLogger(__name__)

USER_AGENT = "scryon-dagster/0.1"


@dataclass(frozen=True)
class Backoff:
    """Jittered exponential backoff: ``initial * 2**n`` plus up to ``initial`` of jitter, capped."""

    initial_seconds: float = 0.5
    max_seconds: float = 30.0


DEFAULT_BACKOFF = Backoff()


@dataclass(frozen=True)
class Deadline:
    """A point on the monotonic clock after which a provider call gives up."""

    expires_at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return max(0.0, self.expires_at - time.monotonic())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0


@dataclass(frozen=True)
class AudioTimeout:
    """A provider's time limit for work on audio: ``seconds_per_audio_minute`` for each minute of it, never
    less than ``floor_seconds`` (nor when the duration is unknown). A two-hour call takes a provider longer
    than a two-minute one; one fixed number either times out the long call or waits too long on the short."""

    floor_seconds: float
    seconds_per_audio_minute: float = 0.0

    def __post_init__(self) -> None:
        if self.floor_seconds <= 0 or self.seconds_per_audio_minute < 0:
            raise ValueError("the timeout floor must be positive and its per-minute growth not negative")

    def for_audio(self, audio_seconds: float | None) -> float:
        return max(self.floor_seconds, (audio_seconds or 0) / 60 * self.seconds_per_audio_minute)


@dataclass(frozen=True)
class SentRequest:
    response: httpx.Response
    attempts: int
    elapsed_ms: int


class Pacer(Protocol):
    def wait_for_turn(self, max_wait_seconds: float) -> bool:
        """Sleep until the caller's turn; False (and no turn taken) if it would come too late."""
        ...


class RequestPacer:
    """Spaces requests evenly so one process never sends more than ``per_minute`` in any minute
    (adapters/db/request_slots.py has the same for all processes together).

    A provider's rate limit (pyannoteAI: 100 requests/min) is cheaper to respect up front than to learn
    from 429s: retries run out and soft stages get dropped. A request waits for its turn in its in-flight slot.
    """

    def __init__(self, per_minute: int) -> None:
        self._interval = request_interval_seconds(per_minute)
        self._next_slot = 0.0
        self._lock = threading.Lock()

    def wait_for_turn(self, max_wait_seconds: float) -> bool:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            if slot - now > max_wait_seconds:
                return False
            self._next_slot = slot + self._interval
        time.sleep(max(0.0, slot - time.monotonic()))
        return True


class ProviderHttpClient:
    """Retrying, deadline-bounded, concurrency-capped (and optionally paced) HTTP for one provider."""

    def __init__(
        self,
        *,
        provider: str,
        api_key: str,
        request_timeout_seconds: float,
        max_retries: int,
        max_concurrency: int,
        backoff: Backoff = DEFAULT_BACKOFF,
        http_client: httpx.Client | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        if not api_key or not api_key.strip():
            raise ValueError(f"{provider}: an API key is required")
        if request_timeout_seconds <= 0:
            raise ValueError(f"{provider}: the request timeout must be positive")
        if max_retries < 0:
            raise ValueError(f"{provider}: max retries must not be negative")
        if max_concurrency < 1:
            raise ValueError(f"{provider}: max concurrency must be at least 1")
        self.provider = provider
        self._api_key = api_key.strip()
        self._request_timeout = request_timeout_seconds
        self._max_retries = max_retries
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._pacer = pacer
        self._backoff_wait = tenacity.wait_exponential_jitter(
            multiplier=backoff.initial_seconds, max=backoff.max_seconds, jitter=backoff.initial_seconds
        )
        self._owns_client = http_client is None
        self._client = http_client or httpx.Client(
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
            timeout=request_timeout_seconds,
            headers={"User-Agent": USER_AGENT},
        )

    @property
    def max_retries(self) -> int:
        return self._max_retries

    def send(
        self,
        method: str,
        url: str,
        *,
        codes: StageErrorCodes,
        deadline: Deadline,
        authenticated: bool = True,
        request_timeout_seconds: float | None = None,
        **request_options: Any,
    ) -> SentRequest:
        """Send with retries; return the first 2xx response or raise a :class:`ProviderError`.

        ``authenticated=False`` sends no Authorization header (presigned URLs carry their own).
        ``request_timeout_seconds`` replaces the client's own for this request's attempts (a long call's).
        ``request_options`` go to ``httpx.Client.request`` (``json``, ``data``, ``files``, ``content``,
        ``headers``) and are re-sent unchanged on each attempt.
        """
        # A presigned URL's path can itself be a capability: log only that it was one.
        operation = f"{method} {httpx.URL(url).path}" if authenticated else f"{method} <presigned URL>"
        attempts = 0
        started = time.monotonic()

        def attempt() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            timeout = request_timeout_seconds or self._request_timeout
            return self._attempt(method, url, codes, deadline, timeout, authenticated, request_options)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(RetryableProviderError),
            wait=self._wait,
            stop=lambda state: self._should_stop(state, deadline),
            before_sleep=lambda state: self._log_retry(state, operation),
            reraise=True,
        )
        response = retrying(attempt)
        return SentRequest(response, attempts, int((time.monotonic() - started) * 1000))

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def _attempt(
        self,
        method: str,
        url: str,
        codes: StageErrorCodes,
        deadline: Deadline,
        request_timeout: float,
        authenticated: bool,
        request_options: Mapping[str, Any],
    ) -> httpx.Response:
        if not self._slots.acquire(timeout=deadline.remaining()):
            raise RetryableProviderError(
                f"{self.provider} had no free request slot before the deadline",
                code=codes.timeout,
                provider=self.provider,
            )
        try:
            # The turn is taken while holding a slot, so the request leaves at its turn: turns taken before
            # waiting for a slot were spent late, all at once, past the provider's per-minute limit.
            # Presigned uploads go to object storage, not to the provider's rate-limited API.
            if authenticated and self._pacer is not None and not self._pacer.wait_for_turn(deadline.remaining()):
                raise RateLimitedError(
                    f"{self.provider} request budget exhausted before the deadline",
                    code=codes.rate_limited,
                    provider=self.provider,
                )
            timeout = min(request_timeout, deadline.remaining())
            if timeout <= 0:
                raise RetryableProviderError(
                    f"{self.provider} deadline passed before the request was sent",
                    code=codes.timeout,
                    provider=self.provider,
                )
            headers = dict(request_options.get("headers") or {})
            if authenticated:
                headers["Authorization"] = f"Bearer {self._api_key}"
            options = {**request_options, "headers": headers}
            response = self._client.request(method, url, timeout=timeout, **options)
        except httpx.TimeoutException as exc:
            raise RetryableProviderError(
                f"{self.provider} request timed out ({type(exc).__name__})",
                code=codes.timeout,
                provider=self.provider,
            ) from exc
        except httpx.TransportError as exc:
            raise RetryableProviderError(
                f"{self.provider} request failed ({type(exc).__name__})",
                code=codes.unavailable,
                provider=self.provider,
            ) from exc
        finally:
            self._slots.release()
        if response.is_success:
            return response
        raise error_for_response(response, provider=self.provider, codes=codes)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        wait = self._backoff_wait(state)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryableProviderError) and error.retry_after is not None:
            wait = max(wait, error.retry_after)
        return wait

    def _should_stop(self, state: tenacity.RetryCallState, deadline: Deadline) -> bool:
        if state.attempt_number > self._max_retries:
            return True
        # A wait that ends past the deadline cannot lead to a useful attempt: fail now with the
        # last error (rate-limited, timeout or unavailable) instead of sleeping into a timeout.
        return (state.upcoming_sleep or 0.0) >= deadline.remaining()

    def _log_retry(self, state: tenacity.RetryCallState, operation: str) -> None:
        error = state.outcome.exception() if state.outcome else None
        if not isinstance(error, ProviderError):
            return
        logger.warning(
            "%s %s failed (code=%s, status=%s), attempt %d of %d; retrying in %.2fs",
            self.provider,
            operation,
            error.code.value,
            error.status_code,
            state.attempt_number,
            self._max_retries + 1,
            state.upcoming_sleep,
        )


class ProviderClient:
    """What every provider client shares: its :class:`ProviderHttpClient`, built from the same options, and
    closing it with the client (also as a context manager)."""

    def __init__(
        self,
        *,
        provider: str,
        api_key: str,
        timeout_seconds: float,
        max_retries: int,
        max_concurrency: int,
        backoff: Backoff,
        http_client: httpx.Client | None,
        pacer: Pacer | None = None,
    ) -> None:
        self._http = ProviderHttpClient(
            provider=provider,
            api_key=api_key,
            request_timeout_seconds=timeout_seconds,
            max_retries=max_retries,
            max_concurrency=max_concurrency,
            backoff=backoff,
            http_client=http_client,
            pacer=pacer,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
