from __future__ import annotations

from uuid import uuid4

import pytest

from scryon_dagster.domain.calls import ArtifactType
from scryon_dagster.domain.storage_keys import artifact_key, parse_call_prefix

USER = uuid4()
CALL = uuid4()


@pytest.mark.parametrize(
    ("artifact_type", "suffix"),
    [
        (ArtifactType.DIARIZATION_JSON, "diarization/diarization.json"),
        (ArtifactType.RAW_TRANSCRIPT_JSON, "transcripts/raw.json"),
        (ArtifactType.NORMALIZED_TRANSCRIPT_JSON, "transcripts/normalized.json"),
        (ArtifactType.ANALYSIS_JSON, "analysis/analysis.json"),
    ],
)
def test_fixed_layout(artifact_type: ArtifactType, suffix: str) -> None:
    assert artifact_key(USER, CALL, artifact_type) == f"users/{USER}/calls/{CALL}/{suffix}"


def test_temp_audio_key_keeps_only_the_extension() -> None:
    key = artifact_key(USER, CALL, ArtifactType.TEMP_AUDIO, "m4a")
    assert key == f"users/{USER}/calls/{CALL}/temp/audio-upload.m4a"


@pytest.mark.parametrize("extension", [None, "", "Call with Jane.m4a", "../x", "M4A"])
def test_temp_audio_key_refuses_anything_but_a_plain_extension(extension: str | None) -> None:
    with pytest.raises(ValueError, match="extension"):
        artifact_key(USER, CALL, ArtifactType.TEMP_AUDIO, extension)


def test_parse_call_prefix_round_trips_and_ignores_foreign_keys() -> None:
    assert parse_call_prefix(artifact_key(USER, CALL, ArtifactType.ANALYSIS_JSON)) == (USER, CALL)
    assert parse_call_prefix("users/not-a-uuid/calls/x/analysis/analysis.json") is None
    assert parse_call_prefix("other/thing") is None
