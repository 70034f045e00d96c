"""Object-storage keys: derived from UUIDs only, computed here and nowhere else."""

from __future__ import annotations

import re
from uuid import UUID

from scryon_dagster.domain.calls import ArtifactType

_FIXED_NAMES: dict[ArtifactType, str] = {
    ArtifactType.DIARIZATION_JSON: "diarization/diarization.json",
    ArtifactType.RAW_TRANSCRIPT_JSON: "transcripts/raw.json",
    ArtifactType.NORMALIZED_TRANSCRIPT_JSON: "transcripts/normalized.json",
    ArtifactType.ANALYSIS_JSON: "analysis/analysis.json",
}
_EXTENSION = re.compile(r"^[a-z0-9]{1,8}$")
USERS_PREFIX = "users/"


def call_prefix(user_id: UUID, call_id: UUID) -> str:
    return f"{USERS_PREFIX}{user_id}/calls/{call_id}/"


def artifact_key(user_id: UUID, call_id: UUID, artifact_type: ArtifactType, audio_extension: str | None = None) -> str:
    """The object key of a call's artifact.

    TEMP_AUDIO keeps only the upload's audio extension, not its file name: a recorder's file name
    often carries the contact's name or number, and keys show up in logs and listings.
    """
    prefix = call_prefix(user_id, call_id)
    if artifact_type is ArtifactType.TEMP_AUDIO:
        if audio_extension is None or not _EXTENSION.match(audio_extension):
            raise ValueError("TEMP_AUDIO needs the audio extension (lower-case letters and digits)")
        return f"{prefix}temp/audio-upload.{audio_extension}"
    return prefix + _FIXED_NAMES[artifact_type]


def parse_call_prefix(key: str) -> tuple[UUID, UUID] | None:
    """(user_id, call_id) of a key under ``users/{u}/calls/{c}/``, or None for any other key."""
    parts = key.split("/")
    if len(parts) < 5 or parts[0] != "users" or parts[2] != "calls":
        return None
    try:
        return UUID(parts[1]), UUID(parts[3])
    except ValueError:
        return None
