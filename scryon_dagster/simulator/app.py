"""The provider simulator: one HTTP app speaking the Lemonfox, pyannoteAI and OpenAI contracts.

Same paths, fields, status codes and JSON shapes as the real hosts, so the adapters run against it
unchanged (only base URLs and keys differ). It is labelled as a simulator everywhere it shows: a
startup log line, an ``x-scryon-simulator: 1`` header on every response and ``GET /_sim/health``.

Base URLs for a simulator on port P: ``LEMONFOX_BASE_URL=http://127.0.0.1:P/v1``,
``PYANNOTE_BASE_URL=http://127.0.0.1:P``, ``LLM_BASE_URL=http://127.0.0.1:P/v1``.

Admin API (not part of any provider contract):
- ``POST /_sim/faults`` ``{"provider", "fault", "times"=1 (-1 always), "probability"=1, "match_audio_seconds"?,
  "match_call_id"?, "retry_after_seconds"?, "delay_seconds"=5}``; ``GET``/``DELETE /_sim/faults``
  (``?provider=``). ``probability`` (0 < p <= 1) is the share of matching requests that get the fault,
  for as long as ``times`` lasts: each request some fault matches draws one number from a seeded
  generator, and the matching faults, in registration order, own consecutive slices of [0, 1) as wide
  as their probability. So ``http_500`` at 0.15 then ``http_503`` at 0.15 (both ``times: -1``) fail 15 %
  of requests each; a fault without a probability always wins, as before.
- ``POST /_sim/rate_limit`` ``{"provider", "per_minute"}`` (null clears): sliding 60 s window, 429 +
  ``Retry-After`` beyond it.
- ``POST /_sim/latency`` ``{"provider", "seconds"}``: extra latency on every request of a provider.
- ``GET``/``DELETE /_sim/stats``: request counts per provider and route, 429s, faults served,
  webhook/callback deliveries and the peak number of requests in flight per provider.
- ``GET /_sim/stats/subjects``: per subject and provider, ``requests`` and usable ``answers`` (a
  complete transcription or completion, a diarization job's intact result served for the first time).
  The subject is the call id a request names (pyannote media keys ``scryon-<call id>-...``, the LLM
  prompt's ``callId``), else for a transcription ``audio:<seconds>`` (its audio's duration to the ms).
  Benchmarks read it to find provider work paid twice. Cleared with the statistics.
- ``POST /_sim/reset`` (optional body ``{"seed": n}``: reseeds the fault draws): clears faults, rate
  limits, extra latency and statistics. The generator starts from the server's ``seed``.

Where faults land: ``http_429`` (with ``Retry-After``, default 1 s, and ``retry-after-ms`` for the LLM),
``http_500``, ``http_503`` (with ``Retry-After`` only when ``retry_after_seconds`` is given),
``http_400``, ``http_402``, ``hang`` (no answer until the client gives up) and ``insufficient_quota``
(LLM only) answer the next matching API request of the provider (for pyannote: media input, job
creation or a job poll; never the presigned upload). ``slow`` holds such a request ``delay_seconds``
(at most 600), then answers it normally: keep it below the client's timeout, unlike ``hang``.
``truncated_body`` answers 200 with the real JSON body cut part-way (at a seeded point): a
transcription, a chat completion, or the poll that returns a finished pyannote job's result.
``malformed_json`` and ``empty_transcript`` shape a transcription; ``job_failed``, ``job_canceled``,
``slow_poll`` (the job stays running for an hour) and ``malformed_json`` attach to the next pyannote job
created; ``refusal``, ``finish_length`` and ``malformed_json`` shape a chat completion. Only requests
whose audio is known can match ``match_audio_seconds``; ``match_call_id`` matches the prompt's ``callId``.

The simulator keeps only durations of the audio it receives, never the audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import random
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scryon_dagster.adapters.webhooks import sign_pyannote_webhook
from scryon_dagster.simulator.audio_probe import UndecodableAudioError, probe_duration
from scryon_dagster.simulator.chat import (
    ANALYSIS_SCHEMA_NAME,
    PromptCache,
    analysis_answer,
    completion_document,
    estimate_tokens,
    find_call_id,
    minimal_instance,
)
from scryon_dagster.simulator.control import (
    ALWAYS,
    BROKEN_BODY_FAULTS,
    DEFAULT_RETRY_AFTER_SECONDS,
    DEFAULT_SLOW_SECONDS,
    DELAY_FAULTS,
    FAULTS_BY_PROVIDER,
    JOB_FAULTS,
    PROFILES,
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
from scryon_dagster.simulator.outputs import (
    render_diarization,
    render_identification,
    render_transcript,
    render_voiceprint,
)
from scryon_dagster.simulator.samples import find_sample

logger = logging.getLogger(__name__)

SIMULATOR_HEADER = "x-scryon-simulator"
HANG_LIMIT_SECONDS = 600.0
SLOW_JOB_EXTRA_SECONDS = 3600.0
PRESIGNED_URL_TTL_SECONDS = 3600.0
VOICEPRINT_MAX_AUDIO_SECONDS = 30.0
PYANNOTE_MODELS = frozenset({"precision-1", "precision-2", "community-1"})
WEBHOOK_RETRIES = 3
WEBHOOK_TIMEOUT_SECONDS = 10.0
_MEDIA_URL = re.compile(r"^media://([A-Za-z0-9][A-Za-z0-9._/\-]{0,254})$")
_BEARER = re.compile(r"^Bearer\s+\S+$")
_TRANSCRIPTION_FORMATS = frozenset({"json", "verbose_json", "text"})
_TRUNCATED_JSON = b'{"task": "transcribe", "language": "english", "segments": [{"id": 0, "start": 0.0, "te'
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


class _LabelResponses:
    """ASGI middleware adding ``x-scryon-simulator: 1`` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def labelled_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (SIMULATOR_HEADER.encode(), b"1")]
            await send(message)

        await self.app(scope, receive, labelled_send)


class _BadRequestError(Exception):
    def __init__(self, message: str, field_name: str | None = None) -> None:
        super().__init__(message)
        self.field_name = field_name


def _error(
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


@dataclass(frozen=True)
class _TranscriptionRequest:
    response_format: str
    speaker_labels: bool
    word_timestamps: bool
    language: str | None
    max_speakers: int | None
    callback_url: str | None


@dataclass
class _Job:
    job_id: str
    created_at: datetime
    starts_at: float
    finishes_at: float
    outcome: str
    output: dict[str, Any] | None
    malformed: bool
    audio_seconds: float | None
    subject: str | None
    result_delivered: bool = False
    """Whether an intact succeeded result has been served (the job's usable answer)."""

    def status(self) -> str:
        now = time.monotonic()
        if now < self.starts_at:
            return "created"
        return "running" if now < self.finishes_at else self.outcome

    def body(self) -> bytes:
        status = self.status()
        if self.malformed and status == "succeeded":
            return b'{"jobId": "' + self.job_id.encode() + b'", "status": "succeeded", "output": {"diariz'
        now = datetime.now(UTC)
        document: dict[str, Any] = {
            "jobId": self.job_id,
            "status": status,
            "createdAt": _iso(self.created_at),
            "updatedAt": _iso(now if status in ("created", "running") else self._finished_at()),
        }
        if status == "succeeded":
            document["output"] = self.output
        return json.dumps(document).encode()

    def _finished_at(self) -> datetime:
        return datetime.fromtimestamp(self.created_at.timestamp() + (self.finishes_at - self.starts_at), tz=UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Upload:
    media_key: str
    expires_at: float


@dataclass
class SimulatorState:
    profile: LatencyProfile
    seed: int
    webhook_secret: str
    faults: FaultBook = field(default_factory=FaultBook)
    limits: dict[Provider, SlidingWindowLimiter] = field(default_factory=dict)
    stats: Stats = field(default_factory=Stats)
    prompt_cache: PromptCache = field(default_factory=PromptCache)
    media: dict[str, float | None] = field(default_factory=dict)
    uploads: dict[str, _Upload] = field(default_factory=dict)
    jobs: dict[str, _Job] = field(default_factory=dict)
    extra_latency: dict[Provider, float] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    outbound: httpx.AsyncClient | None = None


class _Simulator:
    """Route handlers over one :class:`SimulatorState`."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    # --- shared plumbing ------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self.state.outbound is None:
            self.state.outbound = httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_SECONDS)
        return self.state.outbound

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)

    def instrumented(
        self, provider: Provider, handler: Callable[..., Awaitable[Response]]
    ) -> Callable[..., Awaitable[Response]]:
        """Count the requests a provider is serving at once and add its configured extra latency."""

        @functools.wraps(handler)
        async def serve(*args: Any, **kwargs: Any) -> Response:
            self.state.stats.request_started(provider.value)
            try:
                await asyncio.sleep(self.state.extra_latency.get(provider, 0.0))
                return await handler(*args, **kwargs)
            finally:
                self.state.stats.request_finished(provider.value)

        return serve

    def _gate(self, request: Request, provider: Provider, route: str) -> Response | None:
        """Count the request; refuse it without a Bearer token or beyond the rate limit."""
        self.state.stats.requests[(provider.value, route)] += 1
        if not _BEARER.match(request.headers.get("authorization", "")):
            return _error(provider, 401, "Missing or invalid API key", kind="authentication_error")
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
        return _error(
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
            return _error(provider, 503, "Service temporarily unavailable", kind="server_error", headers=headers)
        if fault.name is FaultName.INSUFFICIENT_QUOTA:
            return _error(
                provider,
                429,
                "You exceeded your current quota",
                kind="insufficient_quota",
                code="insufficient_quota",
            )
        if fault.name is FaultName.HTTP_402:
            return _error(provider, 402, "Payment required: subscription or budget exhausted", kind="billing_error")
        if fault.name is FaultName.HTTP_400:
            return _error(provider, 400, "Invalid request (injected)", param="url")
        return _error(provider, 500, "Internal server error", kind="server_error")

    async def _json_body(self, request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body())
        except (UnicodeDecodeError, ValueError):
            raise _BadRequestError("body must be JSON") from None
        if not isinstance(body, dict):
            raise _BadRequestError("body must be a JSON object")
        return body

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

    # --- Lemonfox -------------------------------------------------------------------------------

    async def transcriptions(self, request: Request) -> Response:
        provider = Provider.LEMONFOX
        refused = self._gate(request, provider, "POST /v1/audio/transcriptions")
        if refused:
            return refused
        try:
            async with request.form(max_part_size=16 * 1024 * 1024) as form:
                params = _transcription_request(form)
                audio = await _form_audio(form.get("file"), self._fetch)
        except (HTTPException, MultiPartException):
            return _error(provider, 400, "Malformed multipart body")
        except _BadRequestError as exc:
            return _error(provider, 400, str(exc), param=exc.field_name)
        audio_seconds = await self._measure(audio)
        if audio_seconds is None:
            return _error(provider, 400, "Could not decode the audio file", param="file")
        subject = audio_subject(audio_seconds)
        self.state.stats.count_for_subject(subject, provider.value)
        fault = self._take_fault(provider, FAULTS_BY_PROVIDER[provider], audio_seconds=audio_seconds)
        answered = await self._serve_fault(request, fault)
        if answered:
            return answered
        conversation = conversation_for(audio_seconds)
        delay = self.state.profile.transcription_seconds(audio_seconds)
        usable = not (fault and fault.name in BROKEN_BODY_FAULTS)
        if params.callback_url:
            body = self._transcription_body(params, conversation, fault)
            self._spawn(self._deliver_callback(params.callback_url, body, delay))
            if usable:
                self.state.stats.count_for_subject(subject, provider.value, answered=True)
            return JSONResponse({"id": str(uuid.uuid4()), "status": "processing"})
        await asyncio.sleep(delay)
        if usable:
            self.state.stats.count_for_subject(subject, provider.value, answered=True)
        return self._transcription_response(params, conversation, fault)

    def _transcription_body(
        self, params: _TranscriptionRequest, conversation: Conversation, fault: Fault | None
    ) -> bytes:
        if fault and fault.name is FaultName.MALFORMED_JSON:
            return _TRUNCATED_JSON
        if fault and fault.name is FaultName.EMPTY_TRANSCRIPT:
            document: dict[str, Any] = {
                "task": "transcribe",
                "language": "english",
                "duration": round(conversation.duration, 2),
                "text": "",
                "segments": [],
            }
        else:
            document = render_transcript(
                conversation,
                speaker_labels=params.speaker_labels,
                word_timestamps=params.word_timestamps,
                language=params.language,
                max_speakers=params.max_speakers,
                seed=self.state.seed,
            )
        if params.response_format == "json":
            document = {"text": document["text"]}
        body = json.dumps(document).encode()
        return self.state.faults.truncate(body) if fault and fault.name is FaultName.TRUNCATED_BODY else body

    def _transcription_response(
        self, params: _TranscriptionRequest, conversation: Conversation, fault: Fault | None
    ) -> Response:
        body = self._transcription_body(params, conversation, fault)
        if params.response_format == "text" and not (fault and fault.name in BROKEN_BODY_FAULTS):
            return PlainTextResponse(json.loads(body)["text"])
        return Response(body, media_type="application/json")

    async def _deliver_callback(self, url: str, body: bytes, delay: float) -> None:
        await asyncio.sleep(delay)
        outcome = "failed"
        # Whether Lemonfox retries callbacks is undocumented: deliver once, like the worst case.
        with contextlib.suppress(httpx.HTTPError):
            response = await self._client().post(url, content=body, headers={"Content-Type": "application/json"})
            outcome = "delivered" if response.is_success else "failed"
        self.state.stats.deliveries[("lemonfox_callback", outcome)] += 1

    # --- pyannoteAI -----------------------------------------------------------------------------

    async def media_input(self, request: Request) -> Response:
        provider = Provider.PYANNOTE
        refused = self._gate(request, provider, "POST /v1/media/input")
        if refused:
            return refused
        try:
            body = await self._json_body(request)
            media_key = _media_key(body.get("url"))
        except _BadRequestError as exc:
            return _error(provider, 400, str(exc), param=exc.field_name)
        self.state.stats.count_for_subject(conversation_subject(media_key), provider.value)
        answered = await self._serve_fault(request, self._take_fault(provider, REQUEST_FAULTS | DELAY_FAULTS))
        if answered:
            return answered
        token = secrets.token_urlsafe(18)
        self.state.uploads[token] = _Upload(media_key, time.monotonic() + PRESIGNED_URL_TTL_SECONDS)
        upload_url = (
            f"{str(request.base_url).rstrip('/')}/_sim/presigned/{token}"
            f"?X-Amz-Expires={int(PRESIGNED_URL_TTL_SECONDS)}&X-Amz-Signature={secrets.token_hex(32)}"
        )
        return JSONResponse({"url": upload_url}, status_code=201)

    async def presigned_put(self, request: Request, token: str) -> Response:
        """The media store behind the presigned URL: S3-like, authorised by the URL alone."""
        self.state.stats.requests[(Provider.PYANNOTE.value, "PUT /_sim/presigned/{token}")] += 1
        if "authorization" in request.headers:
            return _s3_error(400, "InvalidArgument", "Only one auth mechanism allowed")
        upload = self.state.uploads.get(token)
        if upload is None or upload.expires_at < time.monotonic():
            return _s3_error(403, "AccessDenied", "Request has expired or is not valid")
        self.state.stats.count_for_subject(conversation_subject(upload.media_key), Provider.PYANNOTE.value)
        audio = await request.body()
        self.state.media[upload.media_key] = await self._measure(audio) if audio else None
        return Response(status_code=200, headers={"ETag": f'"{hashlib.md5(audio, usedforsecurity=False).hexdigest()}"'})

    async def diarize(self, request: Request) -> Response:
        return await self._create_job(request, "diarize")

    async def voiceprint(self, request: Request) -> Response:
        return await self._create_job(request, "voiceprint")

    async def identify(self, request: Request) -> Response:
        return await self._create_job(request, "identify")

    async def _create_job(self, request: Request, kind: str) -> Response:
        provider = Provider.PYANNOTE
        refused = self._gate(request, provider, f"POST /v1/{kind}")
        if refused:
            return refused
        try:
            body = await self._json_body(request)
            _validate_job_request(kind, body)
            audio_seconds = await self._job_audio_seconds(body["url"])
        except _BadRequestError as exc:
            return _error(provider, 400, str(exc), param=exc.field_name)
        subject = conversation_subject(body["url"])
        self.state.stats.count_for_subject(subject, provider.value)
        fault = self._take_fault(provider, REQUEST_FAULTS | DELAY_FAULTS | JOB_FAULTS, audio_seconds=audio_seconds)
        answered = await self._serve_fault(request, fault)
        if answered:
            return answered
        if kind == "voiceprint" and audio_seconds is not None and audio_seconds > VOICEPRINT_MAX_AUDIO_SECONDS:
            return _error(provider, 400, "Voiceprint audio must be 30 seconds or shorter", param="url")
        job = self._new_job(kind, body, audio_seconds, fault, subject)
        self.state.jobs[job.job_id] = job
        if isinstance(body.get("webhook"), str):
            self._spawn(self._deliver_job_webhook(job, body["webhook"]))
        return JSONResponse({"jobId": job.job_id, "status": "created"})

    async def _job_audio_seconds(self, url: str) -> float | None:
        """Duration of a job's audio; None when it cannot be decoded (the job will fail, as pyannote's do)."""
        match = _MEDIA_URL.match(url)
        if match:
            if match.group(1) not in self.state.media:
                raise _BadRequestError("media not found: upload it with /v1/media/input first", "url")
            return self.state.media[match.group(1)]
        audio = await self._fetch(url)
        return await self._measure(audio) if audio else None

    def _new_job(
        self, kind: str, body: dict[str, Any], audio_seconds: float | None, fault: Fault | None, subject: str | None
    ) -> _Job:
        now = time.monotonic()
        starts_at = now + self.state.profile.job_queue
        finishes_at = starts_at + self.state.profile.job_seconds(audio_seconds or 0.0)
        outcome, output = "failed", None
        if audio_seconds is not None:
            outcome, output = "succeeded", self._job_output(kind, body, conversation_for(audio_seconds))
        if fault and fault.name in (FaultName.JOB_FAILED, FaultName.JOB_CANCELED):
            outcome, output = ("failed" if fault.name is FaultName.JOB_FAILED else "canceled"), None
        if fault and fault.name is FaultName.SLOW_POLL:
            finishes_at += SLOW_JOB_EXTRA_SECONDS
        return _Job(
            job_id=str(uuid.uuid4()),
            created_at=datetime.now(UTC),
            starts_at=starts_at,
            finishes_at=finishes_at,
            outcome=outcome,
            output=output,
            malformed=bool(fault and fault.name is FaultName.MALFORMED_JSON),
            audio_seconds=audio_seconds,
            subject=subject,
        )

    def _job_output(self, kind: str, body: dict[str, Any], conversation: Conversation) -> dict[str, Any]:
        seed = self.state.seed
        max_speakers = body.get("numSpeakers") or body.get("maxSpeakers")
        if kind == "voiceprint":
            return render_voiceprint(conversation, seed=seed)
        if kind == "identify":
            matching = body.get("matching") or {}
            return render_identification(
                conversation,
                voiceprint_labels=[entry["label"] for entry in body["voiceprints"]],
                max_speakers=max_speakers,
                threshold=float(matching.get("threshold", 0)),
                seed=seed,
            )
        return render_diarization(
            conversation, max_speakers=max_speakers, exclusive=bool(body.get("exclusive")), seed=seed
        )

    async def get_job(self, request: Request, job_id: str) -> Response:
        provider = Provider.PYANNOTE
        refused = self._gate(request, provider, "GET /v1/jobs/{jobId}")
        if refused:
            return refused
        job = self.state.jobs.get(job_id)
        if job is None:
            return _error(provider, 404, "Job not found")
        self.state.stats.count_for_subject(job.subject, provider.value)
        # Only a finished job's result is worth truncating: that is the answer the client keeps.
        finished = job.status() == "succeeded"
        applicable = REQUEST_FAULTS | DELAY_FAULTS | ({FaultName.TRUNCATED_BODY} if finished else frozenset())
        fault = self._take_fault(provider, applicable, audio_seconds=job.audio_seconds)
        answered = await self._serve_fault(request, fault)
        if answered:
            return answered
        body = job.body()
        if fault and fault.name is FaultName.TRUNCATED_BODY:
            body = self.state.faults.truncate(body)
        elif finished and not job.malformed and not job.result_delivered:
            job.result_delivered = True
            self.state.stats.count_for_subject(job.subject, provider.value, answered=True)
        return Response(body, media_type="application/json")

    async def _deliver_job_webhook(self, job: _Job, url: str) -> None:
        # asyncio may wake a sleep a clock tick early: wait until the job really is terminal
        while job.status() in ("created", "running"):
            await asyncio.sleep(max(0.001, job.finishes_at - time.monotonic()))
        body = job.body()
        for attempt in range(1 + WEBHOOK_RETRIES):
            if attempt:
                await asyncio.sleep(self.state.profile.delivery_retry_spacing)
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "X-Request-Timestamp": str(timestamp),
                "X-Signature": sign_pyannote_webhook(body, self.state.webhook_secret, timestamp),
            }
            with contextlib.suppress(httpx.HTTPError):
                response = await self._client().post(url, content=body, headers=headers)
                if response.is_success:
                    self.state.stats.deliveries[("pyannote_webhook", "delivered")] += 1
                    return
        self.state.stats.deliveries[("pyannote_webhook", "failed")] += 1

    # --- OpenAI-compatible chat completions -----------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        provider = Provider.LLM
        refused = self._gate(request, provider, "POST /v1/chat/completions")
        if refused:
            return refused
        try:
            body = await self._json_body(request)
            model, system, user, schema_name, schema = _chat_request(body)
        except _BadRequestError as exc:
            return _error(provider, 400, str(exc), param=exc.field_name)
        call_id = find_call_id(user)
        self.state.stats.count_for_subject(call_id, provider.value)
        fault = self._take_fault(provider, FAULTS_BY_PROVIDER[provider], call_id=call_id)
        answered = await self._serve_fault(request, fault)
        if answered:
            return answered
        rng = random.Random(f"{self.state.seed}:llm:{call_id or hashlib.sha256(user.encode()).hexdigest()}")
        latency = self.state.profile.llm_seconds(rng)
        await asyncio.sleep(latency)
        headers = {"x-request-id": f"req_{secrets.token_hex(16)}", "openai-processing-ms": str(int(latency * 1000))}
        if fault and fault.name is FaultName.MALFORMED_JSON:
            return Response(b'{"id": "chatcmpl-sim", "choices": [{"message": {"content": "{\\"sch', headers=headers)
        if schema_name == ANALYSIS_SCHEMA_NAME:
            content: str | None = json.dumps(analysis_answer(user))
        elif schema is not None:
            content = json.dumps(minimal_instance(schema))
        else:
            content = "This is a simulated completion."
        refusal, finish_reason = None, "stop"
        if fault and fault.name is FaultName.REFUSAL:
            content, refusal = None, "I'm sorry, but I can't help with that request."
        elif fault and fault.name is FaultName.FINISH_LENGTH and content is not None:
            content, finish_reason = content[: len(content) // 2], "length"
        document = completion_document(
            model=model,
            content=content,
            refusal=refusal,
            finish_reason=finish_reason,
            prompt_tokens=estimate_tokens(system) + estimate_tokens(user) + 7,
            completion_tokens=estimate_tokens(content or refusal or ""),
            cached_tokens=self.state.prompt_cache.cached_tokens(system) if system else 0,
        )
        if fault and fault.name is FaultName.TRUNCATED_BODY:
            cut = self.state.faults.truncate(json.dumps(document).encode())
            return Response(cut, media_type="application/json", headers=headers)
        self.state.stats.count_for_subject(call_id, provider.value, answered=True)
        return JSONResponse(document, headers=headers)

    # --- admin ----------------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "simulator": True,
                "description": "Scryon provider simulator: simulated Lemonfox, pyannoteAI and OpenAI APIs",
                "profile": self.state.profile.name,
                "providers": [provider.value for provider in Provider],
            }
        )

    async def add_fault(self, request: Request) -> Response:
        try:
            body = await self._json_body(request)
            fault = _fault_from(body)
            self.state.faults.add(fault)
        except (_BadRequestError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"fault": fault.describe()}, status_code=201)

    async def list_faults(self, request: Request) -> Response:
        return JSONResponse({"faults": self.state.faults.describe()})

    async def clear_faults(self, request: Request) -> Response:
        name = request.query_params.get("provider")
        try:
            provider = Provider(name) if name else None
        except ValueError:
            return JSONResponse({"error": f"unknown provider {name!r}"}, status_code=400)
        self.state.faults.clear(provider)
        return JSONResponse({"faults": self.state.faults.describe()})

    async def set_rate_limit(self, request: Request) -> Response:
        try:
            body = await self._json_body(request)
            provider = Provider(str(body.get("provider")))
            per_minute = body.get("per_minute")
            if per_minute is None:
                self.state.limits.pop(provider, None)
            elif isinstance(per_minute, int) and not isinstance(per_minute, bool):
                self.state.limits[provider] = SlidingWindowLimiter(per_minute)
            else:
                raise _BadRequestError("per_minute must be an integer or null")
        except (_BadRequestError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"rate_limits": {p.value: lim.per_minute for p, lim in self.state.limits.items()}})

    async def set_latency(self, request: Request) -> Response:
        try:
            body = await self._json_body(request)
            provider = Provider(str(body.get("provider")))
            seconds = body.get("seconds")
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
                raise _BadRequestError("seconds must be a non-negative number")
        except (_BadRequestError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        self.state.extra_latency[provider] = float(seconds)
        return JSONResponse({"extra_latency": {p.value: v for p, v in self.state.extra_latency.items()}})

    async def get_stats(self, request: Request) -> Response:
        return JSONResponse(self.state.stats.snapshot())

    async def reset_stats(self, request: Request) -> Response:
        self.state.stats.reset()
        return JSONResponse(self.state.stats.snapshot())

    async def get_subject_stats(self, request: Request) -> Response:
        return JSONResponse({"subjects": self.state.stats.subjects()})

    async def reset(self, request: Request) -> Response:
        try:
            body = await self._json_body(request) if await request.body() else {}
            seed = body.get("seed")
            if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
                raise _BadRequestError("seed must be an integer or null")
        except _BadRequestError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if seed is not None:
            self.state.faults.reseed(seed)
        self.state.faults.clear()
        self.state.limits.clear()
        self.state.extra_latency.clear()
        self.state.stats.reset()
        return JSONResponse({"status": "reset"})


def _s3_error(status: int, code: str, message: str) -> Response:
    body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return Response(body, status_code=status, media_type="application/xml")


def _transcription_request(form: Any) -> _TranscriptionRequest:
    def text(name: str) -> str | None:
        value = form.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise _BadRequestError(f"{name} must be a text field", name)
        return value.strip() or None

    def count(name: str) -> int | None:
        value = text(name)
        if value is None:
            return None
        if not value.isdigit() or int(value) < 1:
            raise _BadRequestError(f"{name} must be a positive integer", name)
        return int(value)

    response_format = text("response_format") or "json"
    if response_format not in _TRANSCRIPTION_FORMATS:
        raise _BadRequestError(
            f"response_format {response_format!r} is not supported by the simulator", "response_format"
        )
    callback_url = text("callback_url")
    if callback_url and not callback_url.startswith(("http://", "https://")):
        raise _BadRequestError("callback_url must be an http(s) URL", "callback_url")
    granularities = [value for value in form.getlist("timestamp_granularities[]") if isinstance(value, str)]
    min_speakers, max_speakers = count("min_speakers"), count("max_speakers")
    if min_speakers and max_speakers and min_speakers > max_speakers:
        raise _BadRequestError("min_speakers must not exceed max_speakers", "min_speakers")
    return _TranscriptionRequest(
        response_format=response_format,
        speaker_labels=(text("speaker_labels") or "false").lower() == "true",
        word_timestamps=response_format == "verbose_json" and "word" in granularities,
        language=text("language"),
        max_speakers=max_speakers,
        callback_url=callback_url,
    )


async def _form_audio(value: Any, fetch: Callable[[str], Awaitable[bytes | None]]) -> bytes:
    """The ``file`` field: uploaded bytes, or a URL to download them from."""
    if isinstance(value, UploadFile):
        audio = await value.read()
    elif isinstance(value, str) and value.startswith(("http://", "https://")):
        audio = await fetch(value) or b""
    else:
        raise _BadRequestError("file is required (audio bytes or a URL)", "file")
    if not audio:
        raise _BadRequestError("file is empty or could not be downloaded", "file")
    return audio


def _media_key(url: Any) -> str:
    match = _MEDIA_URL.match(url) if isinstance(url, str) else None
    if not match:
        raise _BadRequestError("url must be media://<key> (letters, digits, '.', '_', '-', '/')", "url")
    return match.group(1)


def _validate_job_request(kind: str, body: dict[str, Any]) -> None:
    url = body.get("url")
    if not isinstance(url, str) or not (_MEDIA_URL.match(url) or url.startswith(("https://", "http://"))):
        raise _BadRequestError("url must be a media:// or http(s) URL", "url")
    model = body.get("model")
    if model is not None and model not in PYANNOTE_MODELS:
        raise _BadRequestError(f"model must be one of {sorted(PYANNOTE_MODELS)}", "model")
    for name in ("numSpeakers", "minSpeakers", "maxSpeakers"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise _BadRequestError(f"{name} must be a positive integer", name)
    if "exclusive" in body and not isinstance(body["exclusive"], bool):
        raise _BadRequestError("exclusive must be a boolean", "exclusive")
    webhook = body.get("webhook")
    if webhook is not None and not (isinstance(webhook, str) and webhook.startswith(("https://", "http://"))):
        raise _BadRequestError("webhook must be an http(s) URL", "webhook")
    if kind != "identify":
        return
    voiceprints = body.get("voiceprints")
    if not isinstance(voiceprints, list) or not voiceprints:
        raise _BadRequestError("voiceprints must be a non-empty list", "voiceprints")
    for entry in voiceprints:
        if not isinstance(entry, dict) or not isinstance(entry.get("voiceprint"), str):
            raise _BadRequestError("each voiceprint needs a label and a voiceprint", "voiceprints")
        label = entry.get("label")
        if not isinstance(label, str) or not label or label.startswith("SPEAKER_"):
            raise _BadRequestError("voiceprint labels must be non-empty and not start with SPEAKER_", "voiceprints")
    matching = body.get("matching")
    if matching is not None:
        threshold = matching.get("threshold", 0) if isinstance(matching, dict) else None
        if not isinstance(threshold, int | float) or not 0 <= threshold <= 100:
            raise _BadRequestError("matching.threshold must be a number from 0 to 100", "matching")


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    raise _BadRequestError("message content must be a string or a list of parts", "messages")


def _chat_request(body: dict[str, Any]) -> tuple[str, str, str, str | None, dict[str, Any] | None]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _BadRequestError("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise _BadRequestError("messages must be a non-empty array of message objects", "messages")
    system = "\n".join(_message_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
    user = "\n".join(_message_text(m.get("content")) for m in messages if m.get("role") == "user")
    response_format = body.get("response_format")
    if response_format is not None and not isinstance(response_format, dict):
        raise _BadRequestError("response_format must be an object", "response_format")
    if response_format is None or response_format.get("type") in ("text", "json_object"):
        return model, system, user, None, None
    json_schema = response_format.get("json_schema") if response_format.get("type") == "json_schema" else None
    if not isinstance(json_schema, dict) or not isinstance(json_schema.get("name"), str):
        raise _BadRequestError("response_format.json_schema.name is required", "response_format")
    schema = json_schema.get("schema")
    if not isinstance(schema, dict):
        raise _BadRequestError("response_format.json_schema.schema must be an object", "response_format")
    return model, system, user, json_schema["name"], schema


def _fault_from(body: dict[str, Any]) -> Fault:
    try:
        provider = Provider(str(body.get("provider")))
        name = FaultName(str(body.get("fault")))
    except ValueError:
        raise _BadRequestError(
            f"provider must be one of {[p.value for p in Provider]} and fault one of {[f.value for f in FaultName]}"
        ) from None
    times = body.get("times", 1)
    match_audio = body.get("match_audio_seconds")
    match_call_id = body.get("match_call_id")
    retry_after = body.get("retry_after_seconds")
    probability = body.get("probability", 1.0)
    delay = body.get("delay_seconds", DEFAULT_SLOW_SECONDS)
    if not isinstance(times, int) or isinstance(times, bool) or (times < 1 and times != ALWAYS):
        raise _BadRequestError("times must be a positive integer or -1 (always)")
    if match_audio is not None and not isinstance(match_audio, int | float):
        raise _BadRequestError("match_audio_seconds must be a number or null")
    if match_call_id is not None and not isinstance(match_call_id, str):
        raise _BadRequestError("match_call_id must be a string or null")
    if retry_after is not None and (not _is_number(retry_after) or retry_after < 0):
        raise _BadRequestError("retry_after_seconds must be a non-negative number or null")
    if not _is_number(probability) or not 0 < probability <= 1:
        raise _BadRequestError("probability must be a number greater than 0 and at most 1")
    if not _is_number(delay) or delay <= 0:
        raise _BadRequestError("delay_seconds must be a positive number")
    return Fault(
        provider=provider,
        name=name,
        times=times,
        match_audio_seconds=float(match_audio) if match_audio is not None else None,
        match_call_id=match_call_id,
        retry_after_seconds=float(retry_after) if retry_after is not None else None,
        probability=float(probability),
        delay_seconds=float(delay),
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def create_app(profile: str = "fast", seed: int = 0, webhook_secret: str | None = None) -> FastAPI:
    """The simulator as an ASGI app. ``webhook_secret`` signs pyannote webhook deliveries (a random
    one is used when omitted, so deliveries then cannot be verified)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown simulator profile {profile!r}; choose one of {sorted(PROFILES)}")
    state = SimulatorState(
        profile=PROFILES[profile],
        seed=seed,
        webhook_secret=webhook_secret or secrets.token_urlsafe(32),
        faults=FaultBook(seed),
    )
    simulator = _Simulator(state)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.warning(
            "SIMULATOR: serving simulated Lemonfox, pyannoteAI and OpenAI APIs (profile=%s); "
            "no real provider is called",
            profile,
        )
        yield
        for task in list(state.tasks):
            task.cancel()
        await asyncio.gather(*state.tasks, return_exceptions=True)
        if state.outbound is not None:
            await state.outbound.aclose()

    app = FastAPI(
        title="Scryon provider simulator",
        description="Simulated Lemonfox, pyannoteAI and OpenAI-compatible APIs for tests and demos.",
        lifespan=lifespan,
        docs_url="/_sim/docs",
        openapi_url="/_sim/openapi.json",
        redoc_url=None,
    )
    app.state.simulator = state
    provider_routes: list[tuple[str, Callable[..., Awaitable[Response]], str, Provider]] = [
        ("/v1/audio/transcriptions", simulator.transcriptions, "POST", Provider.LEMONFOX),
        ("/v1/media/input", simulator.media_input, "POST", Provider.PYANNOTE),
        ("/v1/diarize", simulator.diarize, "POST", Provider.PYANNOTE),
        ("/v1/voiceprint", simulator.voiceprint, "POST", Provider.PYANNOTE),
        ("/v1/identify", simulator.identify, "POST", Provider.PYANNOTE),
        ("/v1/jobs/{job_id}", simulator.get_job, "GET", Provider.PYANNOTE),
        ("/v1/chat/completions", simulator.chat_completions, "POST", Provider.LLM),
    ]
    for path, handler, method, provider in provider_routes:
        app.add_api_route(path, simulator.instrumented(provider, handler), methods=[method])
    admin_routes: list[tuple[str, Callable[..., Awaitable[Response]], str]] = [
        ("/_sim/presigned/{token}", simulator.presigned_put, "PUT"),
        ("/_sim/health", simulator.health, "GET"),
        ("/_sim/faults", simulator.add_fault, "POST"),
        ("/_sim/faults", simulator.list_faults, "GET"),
        ("/_sim/faults", simulator.clear_faults, "DELETE"),
        ("/_sim/rate_limit", simulator.set_rate_limit, "POST"),
        ("/_sim/latency", simulator.set_latency, "POST"),
        ("/_sim/stats", simulator.get_stats, "GET"),
        ("/_sim/stats", simulator.reset_stats, "DELETE"),
        ("/_sim/stats/subjects", simulator.get_subject_stats, "GET"),
        ("/_sim/reset", simulator.reset, "POST"),
    ]
    for path, handler, method in admin_routes:
        app.add_api_route(path, handler, methods=[method], include_in_schema=False)
    app.add_middleware(_LabelResponses)
    return app
