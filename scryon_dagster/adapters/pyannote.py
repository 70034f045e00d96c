"""pyannoteAI: media upload, diarization, voiceprints and identification (pollable jobs)."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from scryon_dagster.adapters.audio_upload import AudioSource, audio_size, request_body
from scryon_dagster.adapters.errors import PermanentProviderError, RetryableProviderError, refuse_oversized_upload
from scryon_dagster.adapters.http import (
    DEFAULT_BACKOFF,
    DIARIZATION_CODES,
    VOICE_MATCH_CODES,
    AudioTimeout,
    Backoff,
    Deadline,
    Pacer,
    ProviderClient,
    RequestPacer,
    StageErrorCodes,
    decode_json_object,
    extract_json_member,
)
from scryon_dagster.domain.provider_outputs import Diarization, Identification, ProviderOutputError

if TYPE_CHECKING:
    from scryon_dagster.settings import Settings

PROVIDER = "pyannote"
# pyannoteAI's documented limit for a diarization or identification job's file (FAQ: 1 GiB, 24 h of audio).
MAX_UPLOAD_BYTES = 1024 * 1024 * 1024
SUCCEEDED = "succeeded"
FAILED_STATUSES = frozenset({"failed", "canceled"})
UNREADABLE_POLLS_TOLERATED = 2
"""Job documents in a row that may arrive unreadable (cut in transit) before the job counts as invalid
output: reading a paid-for job again is free, while failing makes the caller pay for a new job."""
MEDIA_SCHEME = "media://"
VOICEPRINT_MAX_AUDIO_SECONDS = 30.0
"""pyannoteAI refuses a voiceprint job whose audio is longer."""
_MEDIA_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/\-]{0,254}$")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")


@dataclass(frozen=True)
class JobSnapshot:
    """One reading of a job (a ``GET /v1/jobs/{id}`` answer or a webhook delivery body)."""

    job_id: str
    status: str
    output_bytes: bytes | None
    """The ``output`` member's bytes exactly as received; present only once the job succeeded."""

    @property
    def is_terminal(self) -> bool:
        return self.status == SUCCEEDED or self.status in FAILED_STATUSES


@dataclass(frozen=True)
class DiarizationResult:
    job_id: str
    raw_bytes: bytes
    """The job's ``output`` JSON, verbatim: stored as DIARIZATION_JSON."""
    diarization: Diarization
    elapsed_ms: int
    polls: int


@dataclass(frozen=True)
class IdentificationResult:
    job_id: str
    raw_bytes: bytes
    identification: Identification
    elapsed_ms: int
    polls: int


def parse_job(raw: bytes, *, codes: StageErrorCodes = DIARIZATION_CODES) -> JobSnapshot:
    """Read a job document: ``{"jobId", "status", "output"?}`` (the poll answer and the webhook body)."""
    data = decode_json_object(raw, provider=PROVIDER, code=codes.invalid_output, what="job")
    job_id, status = data.get("jobId"), data.get("status")
    # Both end up in messages and logs, so they must look like identifiers, not free text.
    if not isinstance(job_id, str) or not _IDENTIFIER.match(job_id):
        raise PermanentProviderError(
            f"{PROVIDER} job document has no valid jobId", code=codes.invalid_output, provider=PROVIDER
        )
    if not isinstance(status, str) or not _IDENTIFIER.match(status):
        raise PermanentProviderError(
            f"{PROVIDER} job document has no valid status", code=codes.invalid_output, provider=PROVIDER
        )
    output = extract_json_member(raw, "output") if status == SUCCEEDED else None
    return JobSnapshot(job_id=job_id, status=status, output_bytes=output)


class PyannoteClient(ProviderClient):
    """One per process; thread-safe. ``timeout_seconds`` is the deadline of a whole operation (an upload,
    or a job from creation to its terminal state, retries included); a job on audio whose duration is
    given gets ``timeout_seconds_per_audio_minute`` for each minute of it when that is longer."""

    def __init__(
        self,
        api_key: str,
        base_url: str = "https://api.pyannote.ai",
        model: str = "precision-2",
        timeout_seconds: float = 300,
        poll_interval_seconds: float = 5,
        max_retries: int = 2,
        max_concurrency: int = 8,
        http_client: httpx.Client | None = None,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        pacer: Pacer | None = None,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        timeout_seconds_per_audio_minute: float = 0.0,
    ) -> None:
        if poll_interval_seconds <= 0:
            raise ValueError("pyannote: the poll interval must be positive")
        super().__init__(
            provider=PROVIDER,
            api_key=api_key,
            timeout_seconds=timeout_seconds,
            max_retries=max_retries,
            max_concurrency=max_concurrency,
            backoff=backoff,
            http_client=http_client,
            pacer=pacer,
        )
        self.max_upload_bytes = max_upload_bytes
        self._base_url = base_url.rstrip("/")
        self._model = model
        self._timeout = AudioTimeout(timeout_seconds, timeout_seconds_per_audio_minute)
        self._poll_interval = poll_interval_seconds

    @classmethod
    def from_settings(
        cls, settings: Settings, http_client: httpx.Client | None = None, *, pacer: Pacer | None = None
    ) -> PyannoteClient:
        """``pacer`` defaults to pacing this process alone to SCRYON_PYANNOTE_REQUESTS_PER_MINUTE."""
        if settings.pyannote_api_key is None:
            raise ValueError("PYANNOTE_API_KEY is not set")
        return cls(
            api_key=settings.pyannote_api_key.get_secret_value(),
            base_url=settings.pyannote_base_url,
            model=settings.pyannote_model,
            timeout_seconds=settings.scryon_diarization_timeout_seconds,
            poll_interval_seconds=settings.scryon_diarization_poll_interval_seconds,
            max_retries=settings.scryon_diarization_max_retries,
            max_concurrency=settings.scryon_pyannote_concurrency,
            http_client=http_client,
            pacer=pacer or _process_pacer(settings.scryon_pyannote_requests_per_minute),
            max_upload_bytes=settings.pyannote_max_upload_bytes,
            timeout_seconds_per_audio_minute=settings.scryon_diarization_timeout_seconds_per_audio_minute,
        )

    def upload_media(self, audio: AudioSource, media_key: str, *, deadline: Deadline | None = None) -> str:
        """Upload to pyannote's temporary media store; return the ``media://<key>`` URL for jobs.
        Audio over ``max_upload_bytes`` is refused before anything is sent (``audio_too_large_for_provider``)."""
        size = audio_size(audio)
        if not size:
            raise ValueError("audio is empty")
        refuse_oversized_upload(size, max_bytes=self.max_upload_bytes, provider=PROVIDER)
        if not _MEDIA_KEY.match(media_key):
            raise ValueError("media_key must be 1-255 characters of letters, digits, '.', '_', '-', '/'")
        deadline = deadline or self._new_deadline()
        media_url = MEDIA_SCHEME + media_key
        sent = self._http.send(
            "POST",
            f"{self._base_url}/v1/media/input",
            codes=DIARIZATION_CODES,
            deadline=deadline,
            json={"url": media_url},
        )
        body = decode_json_object(
            sent.response.content,
            provider=PROVIDER,
            code=DIARIZATION_CODES.invalid_output,
            what="media input answer",
        )
        upload_url = body.get("url")
        if not isinstance(upload_url, str) or not upload_url.startswith(("https://", "http://")):
            raise PermanentProviderError(
                f"{PROVIDER} media input answer has no upload URL",
                code=DIARIZATION_CODES.invalid_output,
                provider=PROVIDER,
            )
        # A presigned URL carries its own authorization; a Bearer header would make the store refuse it.
        with request_body(audio) as audio_body:
            self._http.send(
                "PUT",
                upload_url,
                codes=DIARIZATION_CODES,
                deadline=deadline,
                authenticated=False,
                content=audio_body,
                headers={"Content-Type": "application/octet-stream"},
            )
        return media_url

    def submit_diarization(
        self,
        media_url: str,
        *,
        max_speakers: int | None = None,
        exclusive: bool = True,
        webhook_url: str | None = None,
        deadline: Deadline | None = None,
    ) -> str:
        """Create a diarization job and return its id (for webhook-driven flows)."""
        body: dict[str, Any] = {"url": media_url, "model": self._model, "exclusive": exclusive}
        if max_speakers is not None:
            body["maxSpeakers"] = _positive("max_speakers", max_speakers)
        if webhook_url:
            body["webhook"] = webhook_url
        return self._create_job("diarize", body, DIARIZATION_CODES, deadline or self._new_deadline())

    def diarize(
        self,
        media_url: str,
        *,
        max_speakers: int | None = None,
        exclusive: bool = True,
        deadline: Deadline | None = None,
        audio_seconds: float | None = None,
    ) -> DiarizationResult:
        """Create a diarization job and poll it to a terminal state within the deadline (by default the
        client's, sized by ``audio_seconds`` when given).

        ``max_speakers`` is an upper bound (pyannote's ``maxSpeakers``), not an exact count.
        """
        started = time.monotonic()
        deadline = deadline or self._new_deadline(audio_seconds)
        job_id = self.submit_diarization(media_url, max_speakers=max_speakers, exclusive=exclusive, deadline=deadline)
        output, polls = self._wait_for_output(job_id, DIARIZATION_CODES, deadline)
        try:
            diarization = Diarization.parse(output)
        except ProviderOutputError as exc:
            raise PermanentProviderError(
                f"{PROVIDER} {exc}", code=DIARIZATION_CODES.invalid_output, provider=PROVIDER
            ) from None
        return DiarizationResult(
            job_id=job_id,
            raw_bytes=output,
            diarization=diarization,
            elapsed_ms=_elapsed_ms(started),
            polls=polls,
        )

    def create_voiceprint(self, media_url: str, *, deadline: Deadline | None = None) -> str:
        """Return the opaque voiceprint of a single-speaker recording (at most VOICEPRINT_MAX_AUDIO_SECONDS).
        Never decoded."""
        deadline = deadline or self._new_deadline()
        job_id = self._create_job("voiceprint", {"url": media_url, "model": self._model}, VOICE_MATCH_CODES, deadline)
        output, _ = self._wait_for_output(job_id, VOICE_MATCH_CODES, deadline)
        data = decode_json_object(
            output, provider=PROVIDER, code=VOICE_MATCH_CODES.invalid_output, what="voiceprint output"
        )
        voiceprint = data.get("voiceprint")
        if not isinstance(voiceprint, str) or not voiceprint:
            raise PermanentProviderError(
                f"{PROVIDER} voiceprint output has no voiceprint",
                code=VOICE_MATCH_CODES.invalid_output,
                provider=PROVIDER,
            )
        return voiceprint

    def identify(
        self,
        media_url: str,
        voiceprints: Sequence[tuple[str, str]],
        *,
        max_speakers: int | None = None,
        deadline: Deadline | None = None,
        audio_seconds: float | None = None,
    ) -> IdentificationResult:
        """Diarize and score each diarized speaker against ``(label, voiceprint)`` pairs (within the deadline,
        by default the client's, sized by ``audio_seconds`` when given)."""
        labels = [label for label, _ in voiceprints]
        if not voiceprints:
            raise ValueError("at least one voiceprint is required")
        if any(not label or label.startswith("SPEAKER_") for label in labels):
            raise ValueError("voiceprint labels must be non-empty and must not start with SPEAKER_")
        if len(set(labels)) != len(labels):
            raise ValueError("voiceprint labels must be unique")
        started = time.monotonic()
        deadline = deadline or self._new_deadline(audio_seconds)
        body: dict[str, Any] = {
            "url": media_url,
            "model": self._model,
            "voiceprints": [{"label": label, "voiceprint": print_} for label, print_ in voiceprints],
            "matching": {"exclusive": True, "threshold": 0},
        }
        if max_speakers is not None:
            body["maxSpeakers"] = _positive("max_speakers", max_speakers)
        job_id = self._create_job("identify", body, VOICE_MATCH_CODES, deadline)
        output, polls = self._wait_for_output(job_id, VOICE_MATCH_CODES, deadline)
        try:
            identification = Identification.parse(output)
        except ProviderOutputError as exc:
            raise PermanentProviderError(
                f"{PROVIDER} {exc}", code=VOICE_MATCH_CODES.invalid_output, provider=PROVIDER
            ) from None
        return IdentificationResult(
            job_id=job_id,
            raw_bytes=output,
            identification=identification,
            elapsed_ms=_elapsed_ms(started),
            polls=polls,
        )

    def get_job(
        self, job_id: str, *, codes: StageErrorCodes = DIARIZATION_CODES, deadline: Deadline | None = None
    ) -> JobSnapshot:
        return parse_job(self._read_job(job_id, codes, deadline or self._new_deadline()), codes=codes)

    def _read_job(self, job_id: str, codes: StageErrorCodes, deadline: Deadline) -> bytes:
        sent = self._http.send("GET", f"{self._base_url}/v1/jobs/{job_id}", codes=codes, deadline=deadline)
        return sent.response.content

    def _new_deadline(self, audio_seconds: float | None = None) -> Deadline:
        return Deadline.after(self._timeout.for_audio(audio_seconds))

    def _create_job(self, endpoint: str, body: dict[str, Any], codes: StageErrorCodes, deadline: Deadline) -> str:
        if not isinstance(body.get("url"), str) or not body["url"]:
            raise ValueError("media_url is required")
        sent = self._http.send("POST", f"{self._base_url}/v1/{endpoint}", codes=codes, deadline=deadline, json=body)
        data = decode_json_object(
            sent.response.content, provider=PROVIDER, code=codes.invalid_output, what="job creation answer"
        )
        job_id = data.get("jobId")
        if not isinstance(job_id, str) or not _IDENTIFIER.match(job_id):
            raise PermanentProviderError(
                f"{PROVIDER} job creation answer has no jobId", code=codes.invalid_output, provider=PROVIDER
            )
        return job_id

    def _wait_for_output(self, job_id: str, codes: StageErrorCodes, deadline: Deadline) -> tuple[bytes, int]:
        """Poll until the job succeeds (its output bytes), fails, or the deadline passes.

        No request slot is held while sleeping between polls.
        """
        polls = 0
        unreadable_in_a_row = 0
        while True:
            raw = self._read_job(job_id, codes, deadline)
            polls += 1
            try:
                snapshot = parse_job(raw, codes=codes)
            except PermanentProviderError:
                if unreadable_in_a_row >= UNREADABLE_POLLS_TOLERATED:
                    raise
                unreadable_in_a_row += 1
                continue
            unreadable_in_a_row = 0
            if snapshot.status == SUCCEEDED:
                if snapshot.output_bytes is None:
                    raise PermanentProviderError(
                        f"{PROVIDER} job {job_id} succeeded without output",
                        code=codes.invalid_output,
                        provider=PROVIDER,
                    )
                return snapshot.output_bytes, polls
            if snapshot.status in FAILED_STATUSES:
                raise PermanentProviderError(
                    f"{PROVIDER} job {job_id} ended {snapshot.status}",
                    code=codes.job_failed or codes.unavailable,
                    provider=PROVIDER,
                )
            time.sleep(min(self._poll_interval, deadline.remaining()))
            if deadline.expired:
                raise RetryableProviderError(
                    f"{PROVIDER} job {job_id} still {snapshot.status} at the deadline after {polls} polls",
                    code=codes.timeout,
                    provider=PROVIDER,
                )


def _positive(name: str, value: int) -> int:
    if value < 1:
        raise ValueError(f"{name} must be at least 1")
    return value


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _process_pacer(per_minute: int | None) -> Pacer | None:
    return RequestPacer(per_minute) if per_minute else None
