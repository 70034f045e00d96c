"""Lemonfox (Whisper-compatible) transcription: sync ``verbose_json`` requests and callback mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from scryon_dagster.adapters.audio_upload import AudioSource, audio_size, multipart_audio
from scryon_dagster.adapters.errors import PermanentProviderError, refuse_oversized_upload
from scryon_dagster.adapters.http import (
    DEFAULT_BACKOFF,
    TRANSCRIPTION_CODES,
    AudioTimeout,
    Backoff,
    Deadline,
    ProviderClient,
)
from scryon_dagster.domain.calls import ErrorCode
from scryon_dagster.domain.provider_outputs import ProviderOutputError, RawTranscript

if TYPE_CHECKING:
    from scryon_dagster.settings import Settings

PROVIDER = "lemonfox"
# Lemonfox's documented limit for an uploaded file (a URL it downloads itself may be larger): decimal
# megabytes, the stricter reading. A 16 kHz mono WAV reaches it at about 52 minutes of audio.
MAX_UPLOAD_BYTES = 100 * 1000 * 1000
AUTODETECT_LANGUAGE = "auto"


@dataclass(frozen=True)
class TranscriptionResult:
    raw_bytes: bytes
    """The response body exactly as received: stored as RAW_TRANSCRIPT_JSON."""
    transcript: RawTranscript
    request_ms: int
    attempts: int


def parse_transcription(raw: bytes) -> RawTranscript:
    """Read verbose_json bytes (a sync response or a callback delivery) with the adapter's rules.

    Unreadable bytes raise ``transcription_invalid_output``; a transcript without any text raises
    ``transcription_empty``. Both are permanent.
    """
    try:
        transcript = RawTranscript.parse(raw)
    except ProviderOutputError as exc:
        raise PermanentProviderError(
            f"{PROVIDER} {exc}", code=ErrorCode.TRANSCRIPTION_INVALID_OUTPUT, provider=PROVIDER
        ) from None
    if transcript.is_empty:
        raise PermanentProviderError(
            f"{PROVIDER} returned an empty transcript", code=ErrorCode.TRANSCRIPTION_EMPTY, provider=PROVIDER
        )
    return transcript


def _checked_upload_size(audio: AudioSource, filename: str, content_type: str, max_bytes: int) -> None:
    size = audio_size(audio)
    if not size:
        raise ValueError("audio is empty")
    if not filename or not content_type:
        raise ValueError("filename and content_type are required")
    refuse_oversized_upload(size, max_bytes=max_bytes, provider=PROVIDER)


class LemonfoxClient(ProviderClient):
    """One per process; thread-safe. Each attempt waits ``timeout_seconds``, or
    ``timeout_seconds_per_audio_minute`` for each minute of the audio when that is longer (Lemonfox's answer
    comes when the whole recording is transcribed); by default a whole call gets that times
    ``max_retries + 1``, backoff included."""

    def __init__(
        self,
        api_key: str,
        base_url: str = "https://api.lemonfox.ai/v1",
        model: str = "whisper-1",
        language: str = AUTODETECT_LANGUAGE,
        timeout_seconds: float = 180,
        max_retries: int = 3,
        max_concurrency: int = 8,
        http_client: httpx.Client | None = None,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        timeout_seconds_per_audio_minute: float = 0.0,
    ) -> None:
        self.max_upload_bytes = max_upload_bytes
        self._timeout = AudioTimeout(timeout_seconds, timeout_seconds_per_audio_minute)
        self._attempts = max_retries + 1
        super().__init__(
            provider=PROVIDER,
            api_key=api_key,
            timeout_seconds=timeout_seconds,
            max_retries=max_retries,
            max_concurrency=max_concurrency,
            backoff=backoff,
            http_client=http_client,
        )
        self._url = f"{base_url.rstrip('/')}/audio/transcriptions"
        self._model = model
        self._language = language.strip().lower() or AUTODETECT_LANGUAGE

    @classmethod
    def from_settings(cls, settings: Settings, http_client: httpx.Client | None = None) -> LemonfoxClient:
        if settings.lemonfox_api_key is None:
            raise ValueError("LEMONFOX_API_KEY is not set")
        return cls(
            api_key=settings.lemonfox_api_key.get_secret_value(),
            base_url=settings.lemonfox_base_url,
            model=settings.lemonfox_model,
            language=settings.lemonfox_language,
            timeout_seconds=settings.lemonfox_timeout_seconds,
            max_retries=settings.lemonfox_max_retries,
            max_concurrency=settings.scryon_lemonfox_concurrency,
            http_client=http_client,
            max_upload_bytes=settings.lemonfox_max_upload_bytes,
            timeout_seconds_per_audio_minute=settings.lemonfox_timeout_seconds_per_audio_minute,
        )

    def transcribe(
        self,
        audio: AudioSource,
        *,
        filename: str,
        content_type: str,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        prompt: str | None = None,
        deadline: Deadline | None = None,
        audio_seconds: float | None = None,
    ) -> TranscriptionResult:
        """Transcribe with speaker labels and word + segment timestamps; retry network/5xx/429.
        Audio over ``max_upload_bytes`` is refused before sending (``audio_too_large_for_provider``);
        ``audio_seconds`` (the audio's duration, when known) sizes the time limits."""
        _checked_upload_size(audio, filename, content_type, self.max_upload_bytes)
        timeout = self._timeout.for_audio(audio_seconds)
        with multipart_audio(audio) as audio_part:
            sent = self._http.send(
                "POST",
                self._url,
                codes=TRANSCRIPTION_CODES,
                deadline=deadline or Deadline.after(timeout * self._attempts),
                request_timeout_seconds=timeout,
                data=self._form(min_speakers, max_speakers, prompt, callback_url=None),
                files={"file": (filename, audio_part, content_type)},
            )
        raw = sent.response.content
        return TranscriptionResult(
            raw_bytes=raw,
            transcript=parse_transcription(raw),
            request_ms=sent.elapsed_ms,
            attempts=sent.attempts,
        )

    def submit_with_callback(
        self,
        audio: AudioSource,
        *,
        filename: str,
        content_type: str,
        callback_url: str,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        prompt: str | None = None,
        deadline: Deadline | None = None,
    ) -> None:
        """Queue a transcription whose verbose_json Lemonfox POSTs to ``callback_url`` later.

        Build ``callback_url`` with :func:`scryon_dagster.adapters.webhooks.build_signed_callback_url`;
        the delivery body is read with :func:`parse_transcription`.
        """
        if not callback_url.startswith(("https://", "http://")):
            raise ValueError("callback_url must be an absolute http(s) URL")
        _checked_upload_size(audio, filename, content_type, self.max_upload_bytes)
        with multipart_audio(audio) as audio_part:
            self._http.send(
                "POST",
                self._url,
                codes=TRANSCRIPTION_CODES,
                deadline=deadline or Deadline.after(self._timeout.floor_seconds * self._attempts),
                data=self._form(min_speakers, max_speakers, prompt, callback_url=callback_url),
                files={"file": (filename, audio_part, content_type)},
            )

    def _form(
        self,
        min_speakers: int | None,
        max_speakers: int | None,
        prompt: str | None,
        *,
        callback_url: str | None,
    ) -> dict[str, Any]:
        for name, value in (("min_speakers", min_speakers), ("max_speakers", max_speakers)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1")
        if min_speakers is not None and max_speakers is not None and min_speakers > max_speakers:
            raise ValueError("min_speakers must not exceed max_speakers")
        form: dict[str, Any] = {
            "model": self._model,
            "response_format": "verbose_json",
            # `speaker_labels` is Lemonfox's diarization switch; a `diarization` key is silently ignored.
            "speaker_labels": "true",
            "timestamp_granularities[]": ["word", "segment"],
            "task": "transcribe",
        }
        if self._language != AUTODETECT_LANGUAGE:
            form["language"] = self._language
        if min_speakers is not None:
            form["min_speakers"] = str(min_speakers)
        if max_speakers is not None:
            form["max_speakers"] = str(max_speakers)
        if prompt:
            form["prompt"] = prompt
        if callback_url:
            form["callback_url"] = callback_url
        return form
