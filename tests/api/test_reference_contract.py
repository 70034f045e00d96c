"""A contract test: what the API answers for a call processed end to end (upload through the API,
processing through the simulator) has the fields, JSON types and enum values of the reference's
documented examples (``tests/api/reference/examples.json``, restated from the reference's API documents).
Extra fields of ours are allowed; a missing documented field, another type or an undocumented enum value
is not. The transcript's check is expected to fail until issue 17's transcript-shape change lands."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.pipeline.outcomes import StageSelection
from scryon_dagster.pipeline.runner import CallPipeline
from tests.api.conftest import Api

REFERENCE = json.loads((Path(__file__).parent / "reference" / "examples.json").read_text())
EXAMPLES: dict[str, Any] = REFERENCE["responses"]
ENUMS: dict[str, list[str]] = REFERENCE["enums"]
LEGACY_ALIASES: dict[str, str] = REFERENCE["legacy_aliases"]


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def problems(actual: Any, example: Any, path: str = "$", *, partial: bool = False) -> list[str]:
    """Where ``actual`` departs from the reference ``example``: a documented field missing (unless
    ``partial``: every field optional), a null where the example has a value (unless ``partial``),
    another JSON type, a value outside its documented enum, a timestamp or id that does not parse."""
    if example is None:
        return []
    if actual is None:
        return [] if partial else [f"{path}: null, the reference has a {json_type(example)}"]
    if json_type(actual) != json_type(example):
        return [f"{path}: {json_type(actual)}, the reference has a {json_type(example)}"]
    if isinstance(example, dict):
        found = []
        for key, expected in example.items():
            if key not in actual:
                found += [] if partial else [f"{path}.{key}: missing"]
            else:
                found += problems(actual[key], expected, f"{path}.{key}", partial=partial)
        return found
    if isinstance(example, list):
        return [
            problem
            for index, item in enumerate(actual)
            for problem in (problems(item, example[0], f"{path}[{index}]", partial=partial) if example else [])
        ]
    return _value_problems(actual, example, path)


def _value_problems(actual: Any, example: Any, path: str) -> list[str]:
    parts = [part for part in path.replace("]", "").split(".") if not part.startswith("$")]
    field = parts[-1].split("[")[0]
    parent = parts[-2].split("[")[0] if len(parts) > 1 else ""
    allowed = ENUMS.get(f"{parent}.{field}", ENUMS.get(field))
    if allowed is not None and actual not in allowed:
        return [f"{path}: {actual!r} is not one of {allowed}"]
    if field.endswith("At") and isinstance(example, str):
        try:
            datetime.fromisoformat(actual)
        except ValueError:
            return [f"{path}: not an ISO-8601 timestamp"]
    if field == "callId":
        try:
            UUID(actual)
        except ValueError:
            return [f"{path}: not a UUID"]
    return []


# --- the checker itself --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_reference_example_conforms_to_itself(name: str) -> None:
    assert problems(EXAMPLES[name], EXAMPLES[name]) == []


def test_the_checker_finds_a_missing_field_a_wrong_type_and_an_undocumented_enum_value() -> None:
    detail = {**EXAMPLES["call_detail"], "status": "DONE", "createdAt": 1700000000}
    del detail["errorReason"]

    assert sorted(problems(detail, EXAMPLES["call_detail"])) == [
        "$.createdAt: number, the reference has a string",
        "$.errorReason: missing",
        "$.status: 'DONE' is not one of " + str(ENUMS["status"]),
    ]
    assert problems({"items": [{"callId": "x", "status": "QUEUED"}]}, EXAMPLES["status_poll"]) == [
        "$.items[0].callId: not a UUID",
        "$.nextPollMs: missing",
    ]


# --- the API against the reference ---------------------------------------------------------------------------


def test_a_processed_calls_responses_match_the_reference_examples(
    api: Api, pipeline: CallPipeline, db: CallDatabase, sample_audio: dict[str, Path]
) -> None:
    metadata = {"title": "Quarterly review", "direction": "OUTGOING", "contactName": "Sam"}
    accepted = api.upload(sample_audio["greeting_by_name"].read_bytes(), metadata=metadata)
    assert accepted.status_code == 202
    assert problems(accepted.json(), EXAMPLES["accepted"]) == []
    call_id = UUID(accepted.json()["callId"])
    (outcome,) = pipeline.run_batch([call_id], StageSelection.everything(), batch_id=None, run_id=str(uuid4()))
    assert outcome.succeeded, outcome.error_code

    responses = {
        "call_list": api.request("GET", "/api/calls"),
        "status_poll": api.request("GET", "/api/calls/status", params={"ids": str(call_id)}),
        "call_detail": api.request("GET", f"/api/calls/{call_id}"),
        "error": api.request("GET", f"/api/calls/{uuid4()}"),
    }
    analysis = api.request("GET", f"/api/calls/{call_id}/analysis")

    for name, response in responses.items():
        assert problems(response.json(), EXAMPLES[name]) == [], name
    assert responses["call_list"].json()["items"][0]["status"] == "COMPLETED"
    served = analysis.json()
    # partial: the reference's analysis is open-ended, but a real one carries the documented core
    assert {"schemaVersion", "callType", "sections", "actionItems", "sentiment", "tone", "keyPoints"} <= set(served)
    assert problems(served, EXAMPLES["analysis"], partial=True) == []
    for alias, source in LEGACY_ALIASES.items():
        assert source not in served or alias in served, alias
    deleted = api.request("DELETE", "/api/calls", json={"callIds": [str(call_id)]})
    assert problems(deleted.json(), EXAMPLES["bulk_delete"]) == []


def test_a_processed_calls_transcript_matches_the_reference_example(
    api: Api, pipeline: CallPipeline, sample_audio: dict[str, Path]
) -> None:
    call_id = api.queue_call(audio=sample_audio["greeting_by_name"].read_bytes(), metadata={"direction": "OUTGOING"})
    (outcome,) = pipeline.run_batch([call_id], StageSelection.everything(), batch_id=None, run_id=str(uuid4()))
    assert outcome.succeeded, outcome.error_code

    transcript = api.request("GET", f"/api/calls/{call_id}/transcript").json()

    assert problems(transcript, EXAMPLES["transcript"]) == []
