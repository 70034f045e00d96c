"""The one composition of the transcript chain: raw provider outputs + call metadata → the named, normalized
transcript (align → normalize → resolve_speakers → the optional LLM naming pass).

The pipeline, the tests and the benchmark all call ``build_transcript``, so a rule wired into the chain is
seen by every one of them. What needs I/O comes in from the caller: the voice match as its outcome, the LLM
naming pass as a function, and the caller's stage bookkeeping as ``track``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Protocol

from scryon_dagster.domain.calls import Stage
from scryon_dagster.domain.provider_outputs import Diarization, RawTranscript
from scryon_dagster.domain.transcript.alignment import align
from scryon_dagster.domain.transcript.models import NormalizedTranscript
from scryon_dagster.domain.transcript.naming import SpeakerContext, resolve_speakers
from scryon_dagster.domain.transcript.normalization import Provenance, normalize
from scryon_dagster.domain.transcript.voice_match import VoiceMatchResult

SPEAKER_NAMING_FAILED = "speaker_naming_failed"

TranscriptRefinement = Callable[[NormalizedTranscript], NormalizedTranscript]
"""A naming pass that needs I/O (the LLM's): takes the named transcript, returns it renamed or unchanged."""


class StepHandle(Protocol):
    def soft_failure(self, code: str) -> None: ...


StepTracker = Callable[[Stage], AbstractContextManager[StepHandle]]
"""Wraps each step (TRANSCRIPT_ALIGNED, TRANSCRIPT_NORMALIZED, SPEAKER_REFINED) for the caller's bookkeeping."""


class _UnrecordedStep:
    def soft_failure(self, code: str) -> None:
        """Nobody records soft failures outside the pipeline; the transcript still comes back."""


@contextmanager
def untracked(stage: Stage) -> Iterator[StepHandle]:
    yield _UnrecordedStep()


def build_transcript(
    call_id: str,
    raw: RawTranscript,
    diarization: Diarization | None,
    context: SpeakerContext,
    voice_match: VoiceMatchResult | None,
    *,
    provenance: Provenance,
    created_at: datetime,
    name_with_llm: TranscriptRefinement | None = None,
    track: StepTracker = untracked,
) -> NormalizedTranscript:
    """Language and duration come from the raw transcript.

    Alignment and normalization are hard: ``AlignmentError`` / ``NormalizationError`` (both ``ValueError``,
    messages never quoting transcript content) propagate through ``track``. Naming is soft: when it fails
    the transcript keeps its generic "Speaker N" labels and the step reports ``speaker_naming_failed``."""
    with track(Stage.TRANSCRIPT_ALIGNED):
        aligned = align(raw, diarization)
    with track(Stage.TRANSCRIPT_NORMALIZED):
        transcript = normalize(call_id, aligned, provenance=provenance, created_at=created_at)
    with track(Stage.SPEAKER_REFINED) as step:
        try:
            transcript = resolve_speakers(transcript, context, voice_match)
        except ValueError:
            step.soft_failure(SPEAKER_NAMING_FAILED)
    if name_with_llm is not None:
        transcript = name_with_llm(transcript)
    return transcript
