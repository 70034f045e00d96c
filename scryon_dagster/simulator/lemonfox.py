"""Simulated Lemonfox: ``POST /v1/audio/transcriptions`` (Whisper-compatible), answered at once or,
with a ``callback_url``, by a later POST of the same body to that URL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from scryon_dagster.simulator.control import BROKEN_BODY_FAULTS, FAULTS_BY_PROVIDER, Fault, FaultName, Provider
from scryon_dagster.simulator.conversation import Conversation
from scryon_dagster.simulator.outputs import render_transcript
from scryon_dagster.simulator.plumbing import (
    BadRequestError,
    ProviderRoutes,
    audio_subject,
    conversation_for,
    error_response,
)

_TRANSCRIPTION_FORMATS = frozenset({"json", "verbose_json", "text"})
_TRUNCATED_JSON = b'{"task": "transcribe", "language": "english", "segments": [{"id": 0, "start": 0.0, "te'


@dataclass(frozen=True)
class _TranscriptionRequest:
    response_format: str
    speaker_labels: bool
    word_timestamps: bool
    language: str | None
    max_speakers: int | None
    callback_url: str | None


class LemonfoxRoutes(ProviderRoutes):
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
            return error_response(provider, 400, "Malformed multipart body")
        except BadRequestError as exc:
            return error_response(provider, 400, str(exc), param=exc.field_name)
        audio_seconds = await self._measure(audio)
        if audio_seconds is None:
            return error_response(provider, 400, "Could not decode the audio file", param="file")
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


def _transcription_request(form: Any) -> _TranscriptionRequest:
    def text(name: str) -> str | None:
        value = form.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise BadRequestError(f"{name} must be a text field", name)
        return value.strip() or None

    def count(name: str) -> int | None:
        value = text(name)
        if value is None:
            return None
        if not value.isdigit() or int(value) < 1:
            raise BadRequestError(f"{name} must be a positive integer", name)
        return int(value)

    response_format = text("response_format") or "json"
    if response_format not in _TRANSCRIPTION_FORMATS:
        raise BadRequestError(
            f"response_format {response_format!r} is not supported by the simulator", "response_format"
        )
    callback_url = text("callback_url")
    if callback_url and not callback_url.startswith(("http://", "https://")):
        raise BadRequestError("callback_url must be an http(s) URL", "callback_url")
    granularities = [value for value in form.getlist("timestamp_granularities[]") if isinstance(value, str)]
    min_speakers, max_speakers = count("min_speakers"), count("max_speakers")
    if min_speakers and max_speakers and min_speakers > max_speakers:
        raise BadRequestError("min_speakers must not exceed max_speakers", "min_speakers")
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
        raise BadRequestError("file is required (audio bytes or a URL)", "file")
    if not audio:
        raise BadRequestError("file is empty or could not be downloaded", "file")
    return audio
