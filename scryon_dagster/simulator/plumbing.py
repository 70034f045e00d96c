"""What every simulated provider's routes share: the server's state, the request gate (API key, rate
limit), fault serving, error bodies in each provider's shape, and the subject a request is counted for."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scryon_dagster.simulator.audio_probe import UndecodableAudioError, probe_duration
from scryon_dagster.simulator.control import (
    DEFAULT_RETRY_AFTER_SECONDS,
    DELAY_FAULTS,
    REQUEST_FAULTS,
    Fault,
    FaultBook,
    FaultName,
    LatencyProfile,
    Provider,
    SlidingWindowLimiter,
    Stats,
    retry_after_header,
)
from scryon_dagster.simulator.conversation import Conversation, synthetic_conversation
from scryon_dagster.simulator.samples import find_sample

SIMULATOR_HEADER = "x-scryon-simulator"
HANG_LIMIT_SECONDS = 600.0
OUTBOUND_TIMEOUT_SECONDS = 10.0
"""Timeout of the simulator's own requests: webhook and callback deliveries, audio downloads."""
_BEARER = re.compile(r"^Bearer\s+\S+$")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def conversation_subject(text: str) -> str | None:
    """The call a request belongs to, from the first UUID in a media key or prompt (the pipeline names
    pyannote media ``scryon-<call id>-<attempt>``)."""
    match = _UUID.search(text)
    return match.group(0).lower() if match else None


def audio_subject(audio_seconds: float) -> str:
    """The subject of a request that names no call: its audio's duration, to the millisecond."""
    return f"audio:{audio_seconds:.3f}"


def conversation_for(audio_seconds: float) -> Conversation:
    """The scripted sample with this duration, else a synthetic conversation of that length."""
    sample = find_sample(audio_seconds)
    return sample.conversation if sample else synthetic_conversation(round(audio_seconds, 2))


class LabelResponses:
    """ASGI middleware adding ``x-scryon-simulator: 1`` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def labelled_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (SIMULATOR_HEADER.encode(), b"1")]
            await send(message)

        await self.app(scope, receive, labelled_send)


class BadRequestError(Exception):
    def __init__(self, message: str, field_name: str | None = None) -> None:
        super().__init__(message)
        self.field_name = field_name


def error_response(
    provider: Provider,
    status: int,
    message: str,
    *,
    kind: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error body in the provider's own shape."""
    body: dict[str, Any]
    if provider is Provider.PYANNOTE:
        body = {"message": message}
        if status == 400:
            body["errors"] = [{"field": param or "body", "message": message}]
    else:
        body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


@dataclass
class SimulatorState:
    """What every provider's routes and the admin API share."""

    profile: LatencyProfile
    seed: int
    webhook_secret: str
    faults: FaultBook = field(default_factory=FaultBook)
    limits: dict[Provider, SlidingWindowLimiter] = field(default_factory=dict)
    stats: Stats = field(default_factory=Stats)
    extra_latency: dict[Provider, float] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    outbound: httpx.AsyncClient | None = None


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (UnicodeDecodeError, ValueError):
        raise BadRequestError("body must be JSON") from None
    if not isinstance(body, dict):
        raise BadRequestError("body must be a JSON object")
    return body


def instrumented(
    state: SimulatorState, provider: Provider, handler: Callable[..., Awaitable[Response]]
) -> Callable[..., Awaitable[Response]]:
    """Count the requests a provider is serving at once and add its configured extra latency."""

    @functools.wraps(handler)
    async def serve(*args: Any, **kwargs: Any) -> Response:
        state.stats.request_started(provider.value)
        try:
            await asyncio.sleep(state.extra_latency.get(provider, 0.0))
            return await handler(*args, **kwargs)
        finally:
            state.stats.request_finished(provider.value)

    return serve


class ProviderRoutes:
    """Route handlers of one simulated provider over the shared :class:`SimulatorState`."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    def _client(self) -> httpx.AsyncClient:
        if self.state.outbound is None:
            self.state.outbound = httpx.AsyncClient(timeout=OUTBOUND_TIMEOUT_SECONDS)
        return self.state.outbound

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)

    def _gate(self, request: Request, provider: Provider, route: str) -> Response | None:
        """Count the request; refuse it without a Bearer token or beyond the rate limit."""
        self.state.stats.requests[(provider.value, route)] += 1
        if not _BEARER.match(request.headers.get("authorization", "")):
            return error_response(provider, 401, "Missing or invalid API key", kind="authentication_error")
        limiter = self.state.limits.get(provider)
        wait = limiter.admit() if limiter else None
        if wait is not None:
            self.state.stats.rate_limited[provider.value] += 1
            return self._rate_limited(provider, wait)
        return None

    @staticmethod
    def _rate_limited(provider: Provider, wait_seconds: float) -> Response:
        headers = {"Retry-After": retry_after_header(wait_seconds)}
        if provider is Provider.LLM:
            headers["retry-after-ms"] = str(int(wait_seconds * 1000))
        return error_response(
            provider, 429, "Rate limit exceeded", kind="rate_limit_error", code="rate_limit_exceeded", headers=headers
        )

    def _take_fault(
        self,
        provider: Provider,
        applicable: frozenset[FaultName],
        *,
        audio_seconds: float | None = None,
        call_id: str | None = None,
    ) -> Fault | None:
        fault = self.state.faults.take(provider, applicable, audio_seconds=audio_seconds, call_id=call_id)
        if fault:
            self.state.stats.faults_served[(provider.value, fault.name.value)] += 1
        return fault

    async def _serve_fault(self, request: Request, fault: Fault | None) -> Response | None:
        """The answer a request fault gives instead of the normal one; a delay fault waits, then lets the
        request answer normally (None), as does a fault that only shapes the answer's body."""
        if fault is None:
            return None
        if fault.name in DELAY_FAULTS:
            await asyncio.sleep(fault.delay_seconds)
            return None
        if fault.name in REQUEST_FAULTS:
            return await self._request_fault_response(request, fault)
        return None

    async def _request_fault_response(self, request: Request, fault: Fault) -> Response:
        provider = fault.provider
        if fault.name is FaultName.HANG:
            deadline = time.monotonic() + HANG_LIMIT_SECONDS
            while time.monotonic() < deadline and not await request.is_disconnected():
                await asyncio.sleep(0.05)
            return Response(status_code=504)
        if fault.name is FaultName.HTTP_429:
            retry_after = fault.retry_after_seconds
            return self._rate_limited(provider, DEFAULT_RETRY_AFTER_SECONDS if retry_after is None else retry_after)
        if fault.name is FaultName.HTTP_503:
            headers = (
                {"Retry-After": retry_after_header(fault.retry_after_seconds)}
                if fault.retry_after_seconds is not None
                else None
            )
            return error_response(
                provider, 503, "Service temporarily unavailable", kind="server_error", headers=headers
            )
        if fault.name is FaultName.INSUFFICIENT_QUOTA:
            return error_response(
                provider,
                429,
                "You exceeded your current quota",
                kind="insufficient_quota",
                code="insufficient_quota",
            )
        if fault.name is FaultName.HTTP_402:
            return error_response(
                provider, 402, "Payment required: subscription or budget exhausted", kind="billing_error"
            )
        if fault.name is FaultName.HTTP_400:
            return error_response(provider, 400, "Invalid request (injected)", param="url")
        return error_response(provider, 500, "Internal server error", kind="server_error")

    async def _measure(self, audio: bytes) -> float | None:
        try:
            return await asyncio.to_thread(probe_duration, audio)
        except UndecodableAudioError:
            return None

    async def _fetch(self, url: str) -> bytes | None:
        try:
            response = await self._client().get(url, timeout=60)
        except httpx.HTTPError:
            return None
        return response.content if response.is_success else None
