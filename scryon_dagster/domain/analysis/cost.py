"""Cost estimates for the dry runs and per-call accounting. Prices are parameters (they live in settings).

Token estimates use the common rule of thumb of four characters per token for English text. It is an
estimate for planning (a reprocess dry run), never for billing: the provider's ``usage`` block is the
truth once a call has run. The analysis prompt estimate counts what the provider bills as input: the
system prompt, the user prompt and the JSON schema of ``response_format``.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass

from scryon_dagster.domain.analysis.prompt import AnalysisPrompt, analysis_response_format, build_analysis_prompt
from scryon_dagster.domain.transcript.models import NormalizedTranscript

CHARS_PER_TOKEN = 4
# Chat framing per message (role markers, separators) plus the reply primer, as OpenAI documents it.
_TOKENS_PER_MESSAGE = 4
_TOKENS_PER_REPLY = 3
_TOKENS_PER_MILLION = 1_000_000
_SECONDS_PER_HOUR = 3600.0
PYANNOTE_MIN_BILLED_SECONDS = 20.0


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


def _require_non_negative(**values: float) -> None:
    for name, value in values.items():
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite non-negative number")
