"""The SIMULATOR's analysis answer is about the transcript it was given, and valid for it."""

from __future__ import annotations

import json

from scryon_dagster.domain.analysis import build_analysis_prompt, validate_analysis_output
from scryon_dagster.domain.transcript.models import NormalizedTranscript
from scryon_dagster.simulator.chat import analysis_answer

from .builders import two_party_transcript


def _answer(transcript: NormalizedTranscript) -> dict[str, object]:
    prompt = build_analysis_prompt(
        transcript, call_id=transcript.call_id, recorded_at=None, duration_seconds=30.0, title=None
    )
    answer = analysis_answer(prompt.user)
    validate_analysis_output(content=json.dumps(answer), refusal=None, finish_reason="stop", transcript=transcript)
    return answer


def test_the_analysis_retells_the_transcript_and_cites_its_lines() -> None:
    answer = _answer(two_party_transcript())

    assert "go over the proposal" in str(answer["executiveSummary"])
    assert [item["title"] for item in answer["actionItems"]] == [  # type: ignore[union-attr]
        "Yes, I'll send it by Friday and set up a demo for the team."
    ]
    assert answer["actionItems"][0]["ownerSpeakerId"] == "spk_1"  # type: ignore[index]
    assert [question["text"] for question in answer["openQuestions"]] == [  # type: ignore[union-attr]
        "That would help. Can you send a revised quote by Friday?"
    ]


def test_calls_about_different_things_get_different_analyses() -> None:
    other = two_party_transcript(
        [
            ("spk_1", "Hi, the sync job keeps failing on large exports."),
            ("spk_2", "We can split the export into smaller batches as a workaround."),
            ("spk_1", "That works for us."),
        ]
    )

    first, second = _answer(two_party_transcript()), _answer(other)

    assert first["oneLineSummary"] != second["oneLineSummary"]
    assert first["tags"] != second["tags"]
    assert "sync job" in str(second["executiveSummary"])
