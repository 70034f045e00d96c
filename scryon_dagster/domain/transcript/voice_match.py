"""Voice-match bucketing: which diarized speaker, if any, is the user according to their voiceprint.

pyannote's identify output scores every diarized speaker against each voiceprint (0-100). Per speaker we
keep the best score on a 0-1 scale; exactly one speaker at or above the medium threshold is a match
(HIGH confidence at or above the high threshold, else MEDIUM); none is NO_MATCH; several is AMBIGUOUS
(nobody is labelled). Results are keyed by diarized speaker id, which normalized transcripts keep as
``sourceSpeakerId``, so they only apply to transcripts aligned on the same diarization.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from scryon_dagster.domain.provider_outputs import Identification
from scryon_dagster.domain.transcript.models import Confidence, VoiceMatchStatus

_PROVIDER_SCALE = 100.0
_PROFILE_USED = frozenset({VoiceMatchStatus.MATCHED, VoiceMatchStatus.NO_MATCH, VoiceMatchStatus.AMBIGUOUS})


@dataclass(frozen=True, slots=True)
class VoiceMatchResult:
    status: VoiceMatchStatus
    matched_speaker: str | None = None
    """Diarized speaker id of the user when ``status`` is MATCHED."""
    confidence: Confidence | None = None
    scores: Mapping[str, float] = field(default_factory=dict)
    """Best voiceprint score (0-1) per diarized speaker id."""

    @classmethod
    def disabled(cls) -> VoiceMatchResult:
        return cls(VoiceMatchStatus.DISABLED)

    @classmethod
    def no_profile(cls) -> VoiceMatchResult:
        return cls(VoiceMatchStatus.NO_PROFILE)

    @classmethod
    def failed(cls) -> VoiceMatchResult:
        """Voice matching should have run but did not produce a usable answer (provider error, no diarization)."""
        return cls(VoiceMatchStatus.FAILED)

    @property
    def profile_used(self) -> bool:
        return self.status in _PROFILE_USED

    def score_for(self, source_speaker_id: str | None) -> float | None:
        return None if source_speaker_id is None else self.scores.get(source_speaker_id)


def bucket_voice_match(
    identification: Identification,
    *,
    high_threshold: float,
    medium_threshold: float,
    voiceprint_label: str | None = None,
) -> VoiceMatchResult:
    """Bucket an identify output; ``voiceprint_label`` restricts scoring to that voiceprint (default: any)."""
    if not (0.0 <= medium_threshold <= high_threshold <= 1.0):
        raise ValueError("voice thresholds must satisfy 0 <= medium <= high <= 1")
    scores = _best_scores(identification, voiceprint_label)
    if not scores:
        # Speakers were heard but none was scored: the output cannot answer the question.
        heard = identification.diarization or identification.identification
        return VoiceMatchResult.failed() if heard else VoiceMatchResult(VoiceMatchStatus.NO_MATCH)
    over = sorted(speaker for speaker, score in scores.items() if score >= medium_threshold)
    if not over:
        return VoiceMatchResult(VoiceMatchStatus.NO_MATCH, scores=scores)
    if len(over) > 1:
        return VoiceMatchResult(VoiceMatchStatus.AMBIGUOUS, scores=scores)
    matched = over[0]
    confidence = Confidence.HIGH if scores[matched] >= high_threshold else Confidence.MEDIUM
    return VoiceMatchResult(VoiceMatchStatus.MATCHED, matched_speaker=matched, confidence=confidence, scores=scores)


def _best_scores(identification: Identification, voiceprint_label: str | None) -> dict[str, float]:
    scores: dict[str, float] = {}
    for entry in identification.voiceprints:
        values = [
            value
            for label, value in entry.confidence.items()
            if (voiceprint_label is None or label == voiceprint_label) and math.isfinite(value)
        ]
        if not values:
            continue
        score = round(min(1.0, max(0.0, max(values) / _PROVIDER_SCALE)), 4)
        scores[entry.speaker] = max(score, scores.get(entry.speaker, 0.0))
    return scores
