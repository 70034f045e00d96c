"""Simulated pyannoteAI: media upload through a presigned URL, diarize/voiceprint/identify jobs polled
at ``GET /v1/jobs/{jobId}`` or delivered to a webhook signed as pyannoteAI documents it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import Request, Response
from fastapi.responses import JSONResponse

from scryon_dagster.simulator.control import DELAY_FAULTS, JOB_FAULTS, REQUEST_FAULTS, Fault, FaultName, Provider
from scryon_dagster.simulator.conversation import Conversation
from scryon_dagster.simulator.outputs import render_diarization, render_identification, render_voiceprint
from scryon_dagster.simulator.plumbing import (
    BadRequestError,
    ProviderRoutes,
    SimulatorState,
    conversation_for,
    conversation_subject,
    error_response,
    json_body,
)

SLOW_JOB_EXTRA_SECONDS = 3600.0
PRESIGNED_URL_TTL_SECONDS = 3600.0
VOICEPRINT_MAX_AUDIO_SECONDS = 30.0
PYANNOTE_MODELS = frozenset({"precision-1", "precision-2", "community-1"})
WEBHOOK_RETRIES = 3
_MEDIA_URL = re.compile(r"^media://([A-Za-z0-9][A-Za-z0-9._/\-]{0,254})$")


def sign_webhook(raw_body: bytes, secret: str, timestamp: int) -> str:
    """The ``X-Signature`` pyannoteAI sends with a webhook: base64 HMAC-SHA256, keyed with the team's
    webhook secret, over ``v0:{timestamp}:{raw body}`` (``timestamp`` is ``X-Request-Timestamp``)."""
    message = b"v0:" + str(timestamp).encode() + b":" + raw_body
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


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


class PyannoteRoutes(ProviderRoutes):
    def __init__(self, state: SimulatorState) -> None:
        super().__init__(state)
        self.media: dict[str, float | None] = {}
        """Durations of uploaded media by key (None: not decodable); never the audio."""
        self.uploads: dict[str, _Upload] = {}
        self.jobs: dict[str, _Job] = {}

    async def media_input(self, request: Request) -> Response:
        provider = Provider.PYANNOTE
        refused = self._gate(request, provider, "POST /v1/media/input")
        if refused:
            return refused
        try:
            body = await json_body(request)
            media_key = _media_key(body.get("url"))
        except BadRequestError as exc:
            return error_response(provider, 400, str(exc), param=exc.field_name)
        self.state.stats.count_for_subject(conversation_subject(media_key), provider.value)
        answered = await self._serve_fault(request, self._take_fault(provider, REQUEST_FAULTS | DELAY_FAULTS))
        if answered:
            return answered
        token = secrets.token_urlsafe(18)
        self.uploads[token] = _Upload(media_key, time.monotonic() + PRESIGNED_URL_TTL_SECONDS)
        upload_url = (
            f"{str(request.base_url).rstrip('/')}/_sim/presigned/{token}"
            f"?X-Amz-Expires={int(PRESIGNED_URL_TTL_SECONDS)}&X-Amz-Signature={secrets.token_hex(32)}"
        )
        return JSONResponse({"url": upload_url}, status_code=201)

    async def presigned_put(self, request: Request, token: str) -> Response:
        """The media store behind the presigned URL: S3-like, authorised by the URL alone."""
        self.state.stats.requests[(Provider.PYANNOTE.value, "PUT /_sim/presigned/{token}")] += 1
        if "authorization" in request.headers:
            return _s3error_response(400, "InvalidArgument", "Only one auth mechanism allowed")
        upload = self.uploads.get(token)
        if upload is None or upload.expires_at < time.monotonic():
            return _s3error_response(403, "AccessDenied", "Request has expired or is not valid")
        self.state.stats.count_for_subject(conversation_subject(upload.media_key), Provider.PYANNOTE.value)
        audio = await request.body()
        self.media[upload.media_key] = await self._measure(audio) if audio else None
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
            body = await json_body(request)
            _validate_job_request(kind, body)
            audio_seconds = await self._job_audio_seconds(body["url"])
        except BadRequestError as exc:
            return error_response(provider, 400, str(exc), param=exc.field_name)
        subject = conversation_subject(body["url"])
        self.state.stats.count_for_subject(subject, provider.value)
        fault = self._take_fault(provider, REQUEST_FAULTS | DELAY_FAULTS | JOB_FAULTS, audio_seconds=audio_seconds)
        answered = await self._serve_fault(request, fault)
        if answered:
            return answered
        if kind == "voiceprint" and audio_seconds is not None and audio_seconds > VOICEPRINT_MAX_AUDIO_SECONDS:
            return error_response(provider, 400, "Voiceprint audio must be 30 seconds or shorter", param="url")
        job = self._new_job(kind, body, audio_seconds, fault, subject)
        self.jobs[job.job_id] = job
        if isinstance(body.get("webhook"), str):
            self._spawn(self._deliver_job_webhook(job, body["webhook"]))
        return JSONResponse({"jobId": job.job_id, "status": "created"})

    async def _job_audio_seconds(self, url: str) -> float | None:
        """Duration of a job's audio; None when it cannot be decoded (the job will fail, as pyannote's do)."""
        match = _MEDIA_URL.match(url)
        if match:
            if match.group(1) not in self.media:
                raise BadRequestError("media not found: upload it with /v1/media/input first", "url")
            return self.media[match.group(1)]
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
        job = self.jobs.get(job_id)
        if job is None:
            return error_response(provider, 404, "Job not found")
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
                "X-Signature": sign_webhook(body, self.state.webhook_secret, timestamp),
            }
            with contextlib.suppress(httpx.HTTPError):
                response = await self._client().post(url, content=body, headers=headers)
                if response.is_success:
                    self.state.stats.deliveries[("pyannote_webhook", "delivered")] += 1
                    return
        self.state.stats.deliveries[("pyannote_webhook", "failed")] += 1


def _s3error_response(status: int, code: str, message: str) -> Response:
    body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return Response(body, status_code=status, media_type="application/xml")


def _media_key(url: Any) -> str:
    match = _MEDIA_URL.match(url) if isinstance(url, str) else None
    if not match:
        raise BadRequestError("url must be media://<key> (letters, digits, '.', '_', '-', '/')", "url")
    return match.group(1)


def _validate_job_request(kind: str, body: dict[str, Any]) -> None:
    url = body.get("url")
    if not isinstance(url, str) or not (_MEDIA_URL.match(url) or url.startswith(("https://", "http://"))):
        raise BadRequestError("url must be a media:// or http(s) URL", "url")
    model = body.get("model")
    if model is not None and model not in PYANNOTE_MODELS:
        raise BadRequestError(f"model must be one of {sorted(PYANNOTE_MODELS)}", "model")
    for name in ("numSpeakers", "minSpeakers", "maxSpeakers"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise BadRequestError(f"{name} must be a positive integer", name)
    if "exclusive" in body and not isinstance(body["exclusive"], bool):
        raise BadRequestError("exclusive must be a boolean", "exclusive")
    webhook = body.get("webhook")
    if webhook is not None and not (isinstance(webhook, str) and webhook.startswith(("https://", "http://"))):
        raise BadRequestError("webhook must be an http(s) URL", "webhook")
    if kind != "identify":
        return
    voiceprints = body.get("voiceprints")
    if not isinstance(voiceprints, list) or not voiceprints:
        raise BadRequestError("voiceprints must be a non-empty list", "voiceprints")
    for entry in voiceprints:
        if not isinstance(entry, dict) or not isinstance(entry.get("voiceprint"), str):
            raise BadRequestError("each voiceprint needs a label and a voiceprint", "voiceprints")
        label = entry.get("label")
        if not isinstance(label, str) or not label or label.startswith("SPEAKER_"):
            raise BadRequestError("voiceprint labels must be non-empty and not start with SPEAKER_", "voiceprints")
    matching = body.get("matching")
    if matching is not None:
        threshold = matching.get("threshold", 0) if isinstance(matching, dict) else None
        if not isinstance(threshold, int | float) or not 0 <= threshold <= 100:
            raise BadRequestError("matching.threshold must be a number from 0 to 100", "matching")
