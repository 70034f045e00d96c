"""Typed views of the providers' raw outputs (Lemonfox verbose_json, pyannoteAI job outputs).

Parsing is tolerant of every documented variant (words per segment and/or top level, words without
timestamps, ``speaker: null``) and strict about what the pipeline cannot do without: a transcript
must be a JSON object whose segments carry start/end times. The verbatim bytes are stored as the
artifact; these models are what the domain computes on.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_M = TypeVar("_M", bound=BaseModel)


class ProviderOutputError(ValueError):
    """Provider bytes that cannot be read as the documented shape. Message never quotes content."""


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Word(_Lenient):
    word: str
    start: float | None = None
    end: float | None = None
    speaker: str | None = None


class RawSegment(_Lenient):
    id: int | None = None
    start: float
    end: float
    text: str = ""
    speaker: str | None = None
    avg_logprob: float | None = None
    words: list[Word] = Field(default_factory=list)

    @field_validator("text", mode="before")
    @classmethod
    def _none_text_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("words", mode="before")
    @classmethod
    def _none_words_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class RawTranscript(_Lenient):
    task: str | None = None
    language: str | None = None
    duration: float | None = None
    text: str = ""
    segments: list[RawSegment] = Field(default_factory=list)
    words: list[Word] = Field(default_factory=list)

    @field_validator("text", mode="before")
    @classmethod
    def _none_text_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("segments", "words", mode="before")
    @classmethod
    def _none_list_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def is_empty(self) -> bool:
        return not self.text.strip() and not any(s.text.strip() for s in self.segments)

    @classmethod
    def parse(cls, raw: bytes | str) -> RawTranscript:
        return _parse(cls, raw, "transcript")


class SpeakerTurn(_Lenient):
    speaker: str
    start: float
    end: float


class Diarization(_Lenient):
    """pyannoteAI diarization output; ``exclusive_diarization`` has no overlapping turns."""

    diarization: list[SpeakerTurn] = Field(default_factory=list)
    exclusive_diarization: list[SpeakerTurn] | None = Field(default=None, alias="exclusiveDiarization")

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    @property
    def turns_for_alignment(self) -> list[SpeakerTurn]:
        return list(self.exclusive_diarization) if self.exclusive_diarization else list(self.diarization)

    @property
    def speaker_count(self) -> int:
        return len({turn.speaker for turn in self.diarization})

    @classmethod
    def parse(cls, raw: bytes | str) -> Diarization:
        return _parse(cls, raw, "diarization")


class IdentifiedTurn(_Lenient):
    speaker: str
    start: float
    end: float
    diarization_speaker: str | None = Field(default=None, alias="diarizationSpeaker")
    match: str | None = None

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class VoiceprintScore(_Lenient):
    """One diarized speaker's confidence (0-100, as pyannote reports it) per voiceprint label."""

    speaker: str
    match: str | None = None
    confidence: dict[str, float] = Field(default_factory=dict)


class Identification(_Lenient):
    diarization: list[SpeakerTurn] = Field(default_factory=list)
    identification: list[IdentifiedTurn] = Field(default_factory=list)
    voiceprints: list[VoiceprintScore] = Field(default_factory=list)

    @classmethod
    def parse(cls, raw: bytes | str) -> Identification:
        return _parse(cls, raw, "identification")


def _parse(model: type[_M], raw: bytes | str, what: str) -> _M:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProviderOutputError(f"{what} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ProviderOutputError(f"{what} is not a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})[:5]
        raise ProviderOutputError(f"{what} does not match the documented shape at {fields}") from None
