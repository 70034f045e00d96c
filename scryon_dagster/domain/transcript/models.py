"""The normalized transcript: the only transcript shape clients ever read (system.md §5, schemaVersion 2).

Python attributes are snake_case; the JSON contract is camelCase (``to_json_bytes`` serialises by alias).
``NormalizedTranscript.parse`` reads every older normalization version the reference ever stored:
absent blocks take neutral defaults, v1 segment keys (``start``/``end``, no ``speakerId``) are upgraded.
It writes the reference's shapes (a categorical ``alignmentConfidence`` "HIGH", a dotted ``alignmentVersion``
"1.0", ``voiceProfileMatched`` null when no profile was used), our numbers beside them under names of their
own (``alignmentScore``); our earlier artifacts (numeric ``alignmentConfidence``, integer ``alignmentVersion``)
still read. Garbage raises ``TranscriptFormatError`` whose message names fields, never content.
"""

from __future__ import annotations

import json
import math
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from scryon_dagster.domain.transcript.versions import SCHEMA_VERSION


class TranscriptFormatError(ValueError):
    """A stored transcript that cannot be read as any known version. The message never quotes content."""


class _CaseInsensitiveStrEnum(StrEnum):
    """Accepts "user", "User" and "USER" alike; older artifacts were not always upper-cased."""

    @classmethod
    def _missing_(cls, value: object) -> _CaseInsensitiveStrEnum | None:
        if not isinstance(value, str):
            return None
        wanted = value.strip().upper().replace("-", "_").replace(" ", "_")
        return next((member for member in cls if member.value == wanted), None)


class Role(_CaseInsensitiveStrEnum):
    USER = "USER"
    CONTACT = "CONTACT"
    UNKNOWN = "UNKNOWN"


class Confidence(_CaseInsensitiveStrEnum):
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"

    @property
    def rank(self) -> int:
        return _CONFIDENCE_RANK[self]


_CONFIDENCE_RANK = {Confidence.LOW: 0, Confidence.MEDIUM: 1, Confidence.HIGH: 2}


class LabelSource(_CaseInsensitiveStrEnum):
    DIARIZATION = "DIARIZATION"
    USER_PROFILE = "USER_PROFILE"
    CONTACT_METADATA = "CONTACT_METADATA"
    VOICE_EMBEDDING = "VOICE_EMBEDDING"
    SELF_INTRODUCTION = "SELF_INTRODUCTION"
    GREETING_MATCH = "GREETING_MATCH"
    NAME_MENTION = "NAME_MENTION"
    BY_ELIMINATION = "BY_ELIMINATION"
    ANSWERING_PATTERN = "ANSWERING_PATTERN"
    PHONE_FALLBACK = "PHONE_FALLBACK"
    POSITIONAL_FALLBACK = "POSITIONAL_FALLBACK"
    LLM_INFERENCE = "LLM_INFERENCE"
    AMBIGUOUS = "AMBIGUOUS"
    MANUAL = "MANUAL"


class VoiceMatchStatus(_CaseInsensitiveStrEnum):
    DISABLED = "DISABLED"
    NO_PROFILE = "NO_PROFILE"
    MATCHED = "MATCHED"
    NO_MATCH = "NO_MATCH"
    AMBIGUOUS = "AMBIGUOUS"
    FAILED = "FAILED"


class _TranscriptModel(BaseModel):
    # extra="ignore": older or newer writers may carry keys we do not model; reading must not fail on them.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


# A segment's alignment score (the share of its words' time inside their speaker's turns) in the
# reference's categories, and back: each category's midpoint stands in for a score never recorded.
_HIGH_ALIGNMENT_SCORE = 0.85
_MEDIUM_ALIGNMENT_SCORE = 0.6
_ALIGNMENT_SCORE_OF = {Confidence.HIGH: 0.9, Confidence.MEDIUM: 0.6, Confidence.LOW: 0.3}


def alignment_confidence(score: float) -> Confidence:
    if score >= _HIGH_ALIGNMENT_SCORE:
        return Confidence.HIGH
    return Confidence.MEDIUM if score >= _MEDIUM_ALIGNMENT_SCORE else Confidence.LOW


class TranscriptSpeaker(_TranscriptModel):
    speaker_id: str
    source_speaker_id: str | None = None
    label: str
    display_name: str | None = None
    role: Role = Role.UNKNOWN
    confidence: Confidence = Confidence.LOW
    label_source: LabelSource = LabelSource.DIARIZATION
    voice_match_score: float | None = None
    voice_profile_matched: bool | None = None
    """None when no voice profile was used for the call (as the reference writes it)."""

    @property
    def is_resolved(self) -> bool:
        """Named or given a role by some evidence (not just the generic diarization label)."""
        return self.role is not Role.UNKNOWN or self.display_name is not None


class TranscriptSegment(_TranscriptModel):
    id: str
    speaker: str
    speaker_label: str
    speaker_display_name: str | None = None
    speaker_id: str
    source_speaker_id: str | None = None
    role: Role = Role.UNKNOWN
    start_seconds: float
    end_seconds: float
    text: str
    alignment_confidence: Confidence | None = None
    """The reference's category of ``alignment_score``."""
    alignment_score: float | None = None
    """Ours: the share (0-1) of the segment's word time inside its speaker's diarization turns."""

    @model_validator(mode="before")
    @classmethod
    def _score_and_category(cls, data: Any) -> Any:
        """Either field gives the other: the category follows the score; our artifacts before the
        reference's shape stored the score as ``alignmentConfidence``; the reference stores only the
        category, whose midpoint then stands in for the score."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        category_key = "alignmentConfidence" if "alignmentConfidence" in data else "alignment_confidence"
        score_key = "alignmentScore" if "alignmentScore" in data else "alignment_score"
        category, score = data.get(category_key), data.get(score_key)
        if isinstance(category, int | float) and not isinstance(category, bool):
            category, score = None, category if score is None else score
        if score is not None and category is None:
            category = alignment_confidence(float(score))
        if category is not None and score is None:
            score = _ALIGNMENT_SCORE_OF[Confidence(category)]
        data[category_key], data[score_key] = category, score
        return data

    @field_validator("start_seconds", "end_seconds")
    @classmethod
    def _finite_non_negative(cls, value: float) -> float:
        if not math.isfinite(value) or value < 0:
            raise ValueError("segment times must be finite and non-negative")
        return value

    @property
    def duration_seconds(self) -> float:
        return self.end_seconds - self.start_seconds


class SpeakerResolution(_TranscriptModel):
    strategy_version: int = 0
    used_user_display_name: bool = False
    used_contact_name: bool = False
    used_direction: bool = False
    used_phone_fallback: bool = False
    voice_embedding_enabled: bool = False
    voice_profile_used: bool = False
    voice_match_status: VoiceMatchStatus = VoiceMatchStatus.DISABLED
    total_speaker_count: int = 0
    resolved_speaker_count: int = 0
    warnings: list[str] = Field(default_factory=list)

    @field_validator("warnings", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class PipelineInfo(_TranscriptModel):
    transcription_provider: str = "unknown"
    transcription_model: str = "unknown"
    diarization_provider: str | None = None
    diarization_model: str | None = None
    alignment_version: str = "0.0"
    """Dotted, as the reference writes it ("1.0"); our artifacts before that stored the integer."""
    normalization_version: int = 0
    status: str = "COMPLETED"

    @field_validator("alignment_version", mode="before")
    @classmethod
    def _dotted_version(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return dotted_version(value)
        if isinstance(value, str) and not value.strip().split(".", 1)[0].isdigit():
            raise ValueError("version is not numeric")
        return value

    @field_validator("normalization_version", mode="before")
    @classmethod
    def _integer_version(cls, value: Any) -> Any:
        if isinstance(value, str):
            major = value.strip().split(".", 1)[0]
            if not major.isdigit():
                raise ValueError("version is not numeric")
            return int(major)
        return value


def dotted_version(version: int) -> str:
    return f"{version}.0"


class NormalizedTranscript(_TranscriptModel):
    schema_version: int = SCHEMA_VERSION
    call_id: str
    language: str | None = None
    duration_seconds: float | None = None
    clean_text: str = ""
    speakers: list[TranscriptSpeaker] = Field(default_factory=list)
    segments: list[TranscriptSegment] = Field(default_factory=list)
    speaker_resolution: SpeakerResolution = Field(default_factory=SpeakerResolution)
    pipeline: PipelineInfo = Field(default_factory=PipelineInfo)
    created_at: str = ""
    """ISO-8601 UTC. Empty only for legacy artifacts that never recorded it."""

    @model_validator(mode="before")
    @classmethod
    def _upgrade_legacy_shapes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return _upgrade_legacy(data)

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode("utf-8")

    @classmethod
    def parse(cls, raw: bytes | str) -> NormalizedTranscript:
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TranscriptFormatError(f"normalized transcript is not valid JSON ({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise TranscriptFormatError("normalized transcript is not a JSON object")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            # ``from None`` and only field paths: pydantic's own message quotes the offending values.
            fields = sorted({".".join(str(part) for part in err["loc"]) for err in exc.errors()})[:5]
            raise TranscriptFormatError(f"normalized transcript does not match any known version at {fields}") from None

    def speaker_by_id(self, speaker_id: str) -> TranscriptSpeaker | None:
        return next((speaker for speaker in self.speakers if speaker.speaker_id == speaker_id), None)


def _upgrade_legacy(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a v1-era dict up to the current key set; current artifacts pass through unchanged."""
    raw_segments = data.get("segments")
    if raw_segments is None:
        return {**data, "segments": []}
    if not isinstance(raw_segments, list):
        return data  # let validation report it
    segments = [
        _upgrade_segment(index, seg) if isinstance(seg, dict) else seg for index, seg in enumerate(raw_segments)
    ]
    upgraded = {**data, "segments": segments}

    label_to_id: dict[str, str] = {}
    for seg in segments:
        if isinstance(seg, dict) and "speakerId" not in seg and "speaker_id" not in seg:
            label = _segment_label(seg)
            if label is not None:
                seg["speakerId"] = label_to_id.setdefault(label, f"spk_{len(label_to_id) + 1}")
    if data.get("speakers") is None:
        upgraded["speakers"] = _speakers_from_segments(segments)
    speakers = upgraded.get("speakers")
    if data.get("speakerResolution") is None and data.get("speaker_resolution") is None and isinstance(speakers, list):
        upgraded["speakerResolution"] = {"totalSpeakerCount": len(speakers)}
    return upgraded


def _upgrade_segment(index: int, seg: dict[str, Any]) -> dict[str, Any]:
    seg = dict(seg)
    if "startSeconds" not in seg and "start_seconds" not in seg and "start" in seg:
        seg["startSeconds"] = seg.pop("start")
    if "endSeconds" not in seg and "end_seconds" not in seg and "end" in seg:
        seg["endSeconds"] = seg.pop("end")
    if seg.get("id") is None:
        seg["id"] = f"seg_{index + 1:04d}"
    elif isinstance(seg["id"], int):
        seg["id"] = f"seg_{seg['id'] + 1:04d}"
    label = _segment_label(seg)
    if label is not None:
        seg.setdefault("speaker", label)
        seg.setdefault("speakerLabel", label)
    if seg.get("text") is None:
        seg["text"] = ""
    return seg


def _segment_label(seg: dict[str, Any]) -> str | None:
    for key in ("speakerLabel", "speaker_label", "speaker"):
        value = seg.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _speakers_from_segments(segments: list[Any]) -> list[dict[str, Any]]:
    speakers: dict[str, dict[str, Any]] = {}
    for seg in segments:
        if not isinstance(seg, dict):
            continue
        speaker_id = seg.get("speakerId", seg.get("speaker_id"))
        if not isinstance(speaker_id, str) or speaker_id in speakers:
            continue
        speakers[speaker_id] = {
            "speakerId": speaker_id,
            "sourceSpeakerId": seg.get("sourceSpeakerId"),
            "label": _segment_label(seg) or speaker_id,
            "displayName": seg.get("speakerDisplayName"),
            "role": seg.get("role", Role.UNKNOWN.value),
        }
    return list(speakers.values())
