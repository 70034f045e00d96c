"""Runtime kill switches: the environment gives the defaults, the feature_flags table overrides them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class FeatureFlag(StrEnum):
    PYANNOTE_ENABLED = "PYANNOTE_ENABLED"
    SCRYON_VOICE_EMBEDDING_ENABLED = "SCRYON_VOICE_EMBEDDING_ENABLED"
    SCRYON_ANALYSIS_ENABLED = "SCRYON_ANALYSIS_ENABLED"
    LLM_SPEAKER_NAMING_ENABLED = "LLM_SPEAKER_NAMING_ENABLED"


@dataclass(frozen=True)
class EffectiveFlags:
    diarization: bool
    voice_embedding: bool
    analysis: bool
    llm_speaker_naming: bool

    @classmethod
    def resolve(cls, defaults: Mapping[FeatureFlag, bool], overrides: Mapping[str, bool]) -> EffectiveFlags:
        """Table rows win over environment defaults; unknown table keys are ignored."""

        def value(flag: FeatureFlag) -> bool:
            return overrides.get(flag.value, defaults[flag])

        return cls(
            diarization=value(FeatureFlag.PYANNOTE_ENABLED),
            voice_embedding=value(FeatureFlag.SCRYON_VOICE_EMBEDDING_ENABLED),
            analysis=value(FeatureFlag.SCRYON_ANALYSIS_ENABLED),
            llm_speaker_naming=value(FeatureFlag.LLM_SPEAKER_NAMING_ENABLED),
        )
