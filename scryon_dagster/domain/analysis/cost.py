"""Cost estimates for the dry runs and per-call accounting. Prices are parameters (they live in settings).

Token estimates use the common rule of thumb of four characters per token for English text. It is an
estimate for planning (a reprocess dry run), never for billing: the provider's ``usage`` block is the
truth once a call has run. The analysis prompt estimate counts what the provider bills as input: the
system prompt, the user prompt and the JSON schema of ``response_format``.

A reprocess estimate (``estimate_reprocess_cost``) prices each call from what is known of it: its
duration, else its upload's size; its last recorded analysis usage, else its stored transcript's size,
else its audio.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from scryon_dagster.domain.analysis.prompt import AnalysisPrompt, analysis_response_format, build_analysis_prompt
from scryon_dagster.domain.audio_formats import AudioType
from scryon_dagster.domain.transcript.models import NormalizedTranscript

CHARS_PER_TOKEN = 4
# Chat framing per message (role markers, separators) plus the reply primer, as OpenAI documents it.
_TOKENS_PER_MESSAGE = 4
_TOKENS_PER_REPLY = 3
_TOKENS_PER_MILLION = 1_000_000
_SECONDS_PER_HOUR = 3600.0
PYANNOTE_MIN_BILLED_SECONDS = 20.0

# --- reprocess-estimate assumptions (a dry run's planning figures, never billing) -------------------
AUDIO_BYTES_PER_SECOND: dict[str, int] = {
    AudioType.WAV.content_type: 32_000,  # 16-bit mono PCM at 16 kHz
    AudioType.FLAC.content_type: 16_000,  # lossless, about half of that
    AudioType.AMR.content_type: 1_525,  # AMR-NB at its highest mode, 12.2 kbit/s
    AudioType.AMR_WB.content_type: 2_981,  # AMR-WB at its highest mode, 23.85 kbit/s
}
"""How many bytes of an upload make one second of audio, for calls whose duration is unknown."""
DEFAULT_AUDIO_BYTES_PER_SECOND = 4_000
"""Compressed voice (AAC/M4A, MP3, Opus, 3GPP) at 32 kbit/s, the low end of what phone recorders write:
the estimate errs towards more audio, i.e. a higher cost."""
NORMALIZED_JSON_BYTES_PER_PROMPT_TOKEN = 16
"""Normalized transcript JSON bytes per analysis-prompt token of transcript: measured 15-18.5 on the
six simulator sample calls (the JSON carries word timings and speaker metadata the prompt leaves out)."""
PROMPT_TOKENS_PER_AUDIO_SECOND = 6.0
"""Transcript prompt tokens per second of call audio when no normalized transcript is stored: measured
5-6.1 on the sample calls (conversational speech with segment headers)."""
ANALYSIS_COMPLETION_TOKENS_ESTIMATE = 1_500
"""Output tokens of one analysis when the call has no recorded usage: a realistic schema-v3 answer is
about 1,000 tokens (the simulator's sample answer is 1,060); long calls write more sections."""


@dataclass(frozen=True)
class ProviderCostEstimate:
    transcription_usd: float
    diarization_usd: float

    @property
    def total_usd(self) -> float:
        return self.transcription_usd + self.diarization_usd


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` by the chars/4 heuristic (rounded up)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_analysis_prompt_tokens(transcript: NormalizedTranscript) -> int:
    """Input tokens an analysis request for ``transcript`` will be billed, estimated before sending it."""
    prompt = build_analysis_prompt(
        transcript,
        call_id=transcript.call_id,
        recorded_at=None,
        duration_seconds=transcript.duration_seconds,
        title=None,
    )
    return estimate_analysis_request_tokens(prompt)


def estimate_analysis_request_tokens(prompt: AnalysisPrompt) -> int:
    """Input tokens of one analysis request with ``prompt``: its messages, the response schema, framing."""
    framing = 2 * _TOKENS_PER_MESSAGE + _TOKENS_PER_REPLY
    return estimate_tokens(prompt.system) + estimate_tokens(prompt.user) + _response_format_tokens() + framing


@functools.cache
def _response_format_tokens() -> int:
    return estimate_tokens(json.dumps(analysis_response_format(), separators=(",", ":")))


def estimate_llm_cost_usd(
    prompt_tokens: int,
    completion_tokens: int,
    *,
    input_price_per_mtok: float,
    output_price_per_mtok: float,
) -> float:
    """USD cost of one completion at per-million-token prices."""
    _require_non_negative(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        input_price_per_mtok=input_price_per_mtok,
        output_price_per_mtok=output_price_per_mtok,
    )
    return (prompt_tokens * input_price_per_mtok + completion_tokens * output_price_per_mtok) / _TOKENS_PER_MILLION


def estimate_provider_cost_usd(
    audio_seconds: float,
    *,
    transcription_price_per_audio_hour: float,
    diarization_price_per_audio_hour: float,
    transcribe: bool = True,
    diarization_jobs: int = 1,
    diarization_min_billed_seconds: float = PYANNOTE_MIN_BILLED_SECONDS,
) -> ProviderCostEstimate:
    """USD cost of transcribing (Lemonfox, per audio second) and diarizing (pyannote) one recording.

    Each pyannote job (diarize, identify) is billed per audio second with a minimum per job;
    ``diarization_jobs=0`` when diarization is skipped, 2 when voice identification also runs.
    """
    _require_non_negative(
        audio_seconds=audio_seconds,
        transcription_price_per_audio_hour=transcription_price_per_audio_hour,
        diarization_price_per_audio_hour=diarization_price_per_audio_hour,
        diarization_jobs=diarization_jobs,
        diarization_min_billed_seconds=diarization_min_billed_seconds,
    )
    transcription = audio_seconds / _SECONDS_PER_HOUR * transcription_price_per_audio_hour if transcribe else 0.0
    billed_per_job = billed_diarization_seconds(audio_seconds, diarization_min_billed_seconds)
    diarization = diarization_jobs * billed_per_job / _SECONDS_PER_HOUR * diarization_price_per_audio_hour
    return ProviderCostEstimate(transcription_usd=transcription, diarization_usd=diarization)


def billed_diarization_seconds(audio_seconds: float, min_billed_seconds: float = PYANNOTE_MIN_BILLED_SECONDS) -> float:
    """The audio seconds one pyannote job is billed for: its audio, but at least the minimum per job."""
    return max(audio_seconds, min_billed_seconds)


@dataclass(frozen=True)
class ReprocessPrices:
    """The configured prices a reprocess estimate uses (USD)."""

    transcription_per_audio_hour: float
    diarization_per_audio_hour: float
    diarization_min_billed_seconds: float
    llm_input_per_mtok: float
    llm_output_per_mtok: float


@dataclass(frozen=True)
class ReprocessScope:
    """Which paid stages a reprocess runs; ``diarizes(audio_seconds)`` is the diarization policy's verdict."""

    sends_audio: bool
    transcribes: bool
    analyzes: bool
    diarizes: Callable[[float], bool]


@dataclass(frozen=True)
class CallCostFacts:
    """What is known of one call that its reprocess cost depends on."""

    duration_seconds: float | None
    upload_content_type: str | None = None
    upload_bytes: int | None = None
    normalized_transcript_bytes: int | None = None
    recorded_prompt_tokens: int = 0
    recorded_completion_tokens: int = 0


@dataclass(frozen=True)
class ReprocessCost:
    audio_seconds: float
    """The audio sent to the providers (0 when no stage sends audio)."""
    transcription_usd: float
    diarization_usd: float
    llm_usd: float

    @property
    def total_usd(self) -> float:
        return self.transcription_usd + self.diarization_usd + self.llm_usd


def estimate_reprocess_cost(
    calls: Sequence[CallCostFacts], scope: ReprocessScope, prices: ReprocessPrices
) -> ReprocessCost:
    """The estimated provider cost of reprocessing ``calls`` (a dry run's planning figure)."""
    audio_total = transcription = diarization = llm = 0.0
    for call in calls:
        audio_seconds = estimated_audio_seconds(call)
        if scope.sends_audio:
            audio_total += audio_seconds
            providers = estimate_provider_cost_usd(
                audio_seconds,
                transcription_price_per_audio_hour=prices.transcription_per_audio_hour,
                diarization_price_per_audio_hour=prices.diarization_per_audio_hour,
                transcribe=scope.transcribes,
                diarization_jobs=1 if scope.diarizes(audio_seconds) else 0,
                diarization_min_billed_seconds=prices.diarization_min_billed_seconds,
            )
            transcription += providers.transcription_usd
            diarization += providers.diarization_usd
        if scope.analyzes:
            prompt_tokens, completion_tokens = estimated_analysis_tokens(call, audio_seconds)
            llm += estimate_llm_cost_usd(
                prompt_tokens,
                completion_tokens,
                input_price_per_mtok=prices.llm_input_per_mtok,
                output_price_per_mtok=prices.llm_output_per_mtok,
            )
    return ReprocessCost(
        audio_seconds=audio_total, transcription_usd=transcription, diarization_usd=diarization, llm_usd=llm
    )


def estimated_audio_seconds(call: CallCostFacts) -> float:
    """The call's recorded duration, else its upload size at the format's assumed byte rate, else 0."""
    if call.duration_seconds is not None and call.duration_seconds > 0:
        return call.duration_seconds
    if call.upload_bytes is None:
        return 0.0
    rate = AUDIO_BYTES_PER_SECOND.get(call.upload_content_type or "", DEFAULT_AUDIO_BYTES_PER_SECOND)
    return call.upload_bytes / rate


def estimated_analysis_tokens(call: CallCostFacts, audio_seconds: float) -> tuple[int, int]:
    """(prompt, completion) tokens of the call's next analysis: its last recorded usage when there is one
    (the same transcript costs about the same again), else an estimate from the stored transcript's size
    or, failing that, the audio."""
    if call.recorded_prompt_tokens > 0:
        return call.recorded_prompt_tokens, call.recorded_completion_tokens
    overhead_tokens, empty_transcript_bytes = _analysis_prompt_overhead()
    if call.normalized_transcript_bytes is not None:
        transcript_tokens = max(0, call.normalized_transcript_bytes - empty_transcript_bytes) / (
            NORMALIZED_JSON_BYTES_PER_PROMPT_TOKEN
        )
    else:
        transcript_tokens = audio_seconds * PROMPT_TOKENS_PER_AUDIO_SECOND
    return overhead_tokens + round(transcript_tokens), ANALYSIS_COMPLETION_TOKENS_ESTIMATE


@functools.cache
def _analysis_prompt_overhead() -> tuple[int, int]:
    """(prompt tokens, JSON bytes) of an analysis request for an empty transcript: the system prompt,
    the response schema and the framing every request pays, and the JSON that carries no speech."""
    empty = NormalizedTranscript(call_id="")
    return estimate_analysis_prompt_tokens(empty), len(empty.to_json_bytes())


def _require_non_negative(**values: float) -> None:
    for name, value in values.items():
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite non-negative number")
