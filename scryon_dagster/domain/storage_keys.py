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
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
USERS_PREFIX = "users/"


def call_prefix(user_id: UUID, call_id: UUID) -> str:
    return f"{USERS_PREFIX}{user_id}/calls/{call_id}/"


def safe_audio_name(original_name: str) -> str:
    """A file-name suffix safe for any object store (no path parts, no spaces)."""
    base = original_name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE_NAME_CHARS.sub("_", base).strip("._") or "upload"
    return cleaned[:100]


def artifact_key(user_id: UUID, call_id: UUID, artifact_type: ArtifactType, original_name: str | None = None) -> str:
    prefix = call_prefix(user_id, call_id)
    if artifact_type is ArtifactType.TEMP_AUDIO:
        if original_name is None:
            raise ValueError("TEMP_AUDIO needs the original file name")
        return f"{prefix}temp/audio-{safe_audio_name(original_name)}"
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
