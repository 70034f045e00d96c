"""The pipeline's entry point, from provider bytes to the stored artifact."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from scryon_dagster.domain.calls import Direction, Stage
from scryon_dagster.domain.provider_outputs import Diarization, Identification, RawTranscript
from scryon_dagster.domain.transcript import (
    AlignmentError,
    NormalizedTranscript,
    Role,
    SpeakerContext,
    bucket_voice_match,
    build_transcript,
)
from scryon_dagster.domain.transcript.build import StepHandle
from scryon_dagster.domain.transcript.rendering import with_speakers
from tests.unit.transcript.builders import CALL_ID, CREATED_AT, PROVENANCE, diarization, raw_transcript

SCRIPT = [
    ("SPEAKER_01", "Hello?"),
    ("SPEAKER_00", "Hi Ravi, it's Praveen. Do you have the the the signed contract?"),
    ("SPEAKER_01", "Yes, I'll email it tonight. My cell is 555 867 5309 if anything comes up."),
    ("SPEAKER_00", "Perfect, thanks. [MUSIC] Talk soon."),
]


def test_provider_bytes_become_a_named_normalized_transcript() -> None:
    raw = RawTranscript.parse(raw_transcript(SCRIPT).model_dump_json())
    diarized = Diarization.parse(diarization(SCRIPT).model_dump_json(by_alias=True))
    identification = Identification.model_validate(
        {
            "voiceprints": [
                {"speaker": "SPEAKER_00", "confidence": {"user": 93}},
                {"speaker": "SPEAKER_01", "confidence": {"user": 8}},
            ]
        }
    )
    voice = bucket_voice_match(identification, high_threshold=0.85, medium_threshold=0.75)
    context = SpeakerContext("Praveen Kumar", "Ravi Shankar", "+1 555 111 2222", Direction.OUTGOING, True, True)

    transcript = build_transcript(CALL_ID, raw, diarized, context, voice, provenance=PROVENANCE, created_at=CREATED_AT)
    stored = NormalizedTranscript.parse(transcript.to_json_bytes())

    assert stored == transcript
    assert [(s.speaker_id, s.source_speaker_id, s.label, s.role) for s in stored.speakers] == [
        ("spk_1", "SPEAKER_01", "Ravi Shankar", Role.CONTACT),
        ("spk_2", "SPEAKER_00", "Praveen Kumar", Role.USER),
    ]
    assert stored.clean_text.splitlines() == [
        "[00:00 - 00:00] Ravi Shankar: Hello?",
        "[00:00 - 00:04] Praveen Kumar: Hi Ravi, it's Praveen. Do you have the signed contract?",
        "[00:04 - 00:09] Ravi Shankar: Yes, I'll email it tonight. My cell is •••• 5309 if anything comes up.",
        "[00:09 - 00:11] Praveen Kumar: Perfect, thanks. Talk soon.",
    ]
    assert stored.language == "en"
    assert stored.speaker_resolution.voice_match_status == "MATCHED"
    assert "867" not in json.dumps(json.loads(stored.to_json_bytes()))


class Step:
    def soft_failure(self, code: str) -> None:
        raise AssertionError(f"unexpected soft failure {code}")


def test_the_pipelines_steps_are_tracked_in_order_and_the_llm_pass_names_last() -> None:
    raw = raw_transcript(SCRIPT)
    tracked: list[Stage] = []

    @contextmanager
    def track(stage: Stage) -> Iterator[StepHandle]:
        tracked.append(stage)
        yield Step()

    def rename_contact(transcript: NormalizedTranscript) -> NormalizedTranscript:
        assert transcript.speakers[0].label == "Ravi Shankar"  # the deterministic ladder ran first
        renamed = transcript.speakers[0].model_copy(update={"label": "Ravi S."})
        return with_speakers(transcript, [renamed, *transcript.speakers[1:]])

    context = SpeakerContext("Praveen Kumar", "Ravi Shankar", "+1 555 111 2222", Direction.OUTGOING)
    transcript = build_transcript(
        CALL_ID,
        raw,
        diarization(SCRIPT),
        context,
        None,
        provenance=PROVENANCE,
        created_at=CREATED_AT,
        name_with_llm=rename_contact,
        track=track,
    )

    assert tracked == [Stage.TRANSCRIPT_ALIGNED, Stage.TRANSCRIPT_NORMALIZED, Stage.SPEAKER_REFINED]
    assert transcript.speakers[0].label == "Ravi S."


def test_unusable_input_fails_inside_its_step() -> None:
    raw = RawTranscript.model_validate({"segments": [{"start": math.nan, "end": 1.0, "text": "Hello?"}]})
    failed: list[Stage] = []

    @contextmanager
    def track(stage: Stage) -> Iterator[StepHandle]:
        try:
            yield Step()
        except ValueError:
            failed.append(stage)
            raise

    context = SpeakerContext(None, None, None, Direction.INCOMING)
    with pytest.raises(AlignmentError):
        build_transcript(CALL_ID, raw, None, context, None, provenance=PROVENANCE, created_at=CREATED_AT, track=track)
    assert failed == [Stage.TRANSCRIPT_ALIGNED]
