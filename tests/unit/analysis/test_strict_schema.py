"""The schemas sent with ``response_format`` obey OpenAI strict mode and agree with the models."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from pydantic import Field

from scryon_dagster.domain.analysis import (
    Analysis,
    analysis_response_format,
    speaker_naming_response_format,
    strict_json_schema,
)
from scryon_dagster.domain.analysis.contract import ContractModel, StrictOutputError, decode_strict_output
from scryon_dagster.domain.analysis.models import ActionItem, DiscussionPoint
from scryon_dagster.domain.analysis.speaker_naming import SpeakerNamingAnswer
from scryon_dagster.simulator.analysis_sample import build_sample_analysis

from .builders import load_fixture, without_key

# The keywords OpenAI's strict mode accepts that our generator may emit.
ALLOWED_KEYWORDS = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "anyOf",
    "$ref",
    "$defs",
    "description",
}
JSON_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}
# OpenAI's published limits for a strict schema.
MAX_NESTING = 10
MAX_PROPERTIES = 5000
MAX_ENUM_VALUES = 1000

BOTH_FORMATS = pytest.mark.parametrize(
    "response_format", [analysis_response_format(), speaker_naming_response_format()], ids=["analysis", "naming"]
)


def _schemas(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema object in the tree (not property-name maps), with a JSON-pointer-ish path."""
    if not isinstance(node, dict):
        return
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _schemas(child, f"{path}/properties/{name}")
    for name, child in node.get("$defs", {}).items():
        yield from _schemas(child, f"{path}/$defs/{name}")
    if "items" in node:
        yield from _schemas(node["items"], f"{path}/items")
    for index, branch in enumerate(node.get("anyOf", [])):
        yield from _schemas(branch, f"{path}/anyOf/{index}")


def _object_depth(node: dict[str, Any], defs: dict[str, Any], seen: tuple[str, ...] = ()) -> int:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        assert name not in seen, f"recursive schema through {name}"
        return _object_depth(defs[name], defs, (*seen, name))
    children = [*node.get("properties", {}).values(), *node.get("anyOf", [])]
    if "items" in node:
        children.append(node["items"])
    deepest = max((_object_depth(child, defs, seen) for child in children), default=0)
    return deepest + (1 if "properties" in node else 0)


@BOTH_FORMATS
def test_response_format_envelope_is_strict(response_format: dict[str, Any]) -> None:
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    assert response_format["json_schema"]["name"] in {"scryon_analysis", "scryon_speaker_naming"}
    schema = response_format["json_schema"]["schema"]
    assert schema["type"] == "object"
    assert "anyOf" not in schema


@BOTH_FORMATS
def test_every_object_is_closed_and_requires_every_property(response_format: dict[str, Any]) -> None:
    schema = response_format["json_schema"]["schema"]
    objects = [(path, node) for path, node in _schemas(schema) if "properties" in node or node.get("type") == "object"]

    assert objects
    for path, node in objects:
        assert node.get("additionalProperties") is False, path
        assert node.get("required") == list(node["properties"]), path
        assert node.get("type") == "object", path


@BOTH_FORMATS
def test_only_strict_mode_keywords_and_types_are_used(response_format: dict[str, Any]) -> None:
    schema = response_format["json_schema"]["schema"]

    for path, node in _schemas(schema):
        assert set(node) <= ALLOWED_KEYWORDS, (path, set(node) - ALLOWED_KEYWORDS)
        declared = node.get("type")
        types = declared if isinstance(declared, list) else [declared] if declared else []
        assert set(types) <= JSON_TYPES, path
        if "$ref" in node:
            assert set(node) == {"$ref"}, path
        if "anyOf" in node:
            assert all(isinstance(branch, dict) for branch in node["anyOf"]), path


@BOTH_FORMATS
def test_every_reference_resolves_and_limits_hold(response_format: dict[str, Any]) -> None:
    schema = response_format["json_schema"]["schema"]
    defs = schema.get("$defs", {})

    for path, node in _schemas(schema):
        if "$ref" in node:
            assert node["$ref"].startswith("#/$defs/"), path
            assert node["$ref"].removeprefix("#/$defs/") in defs, path
    assert _object_depth(schema, defs) <= MAX_NESTING
    assert sum(len(node.get("properties", {})) for _, node in _schemas(schema)) <= MAX_PROPERTIES
    assert sum(len(node.get("enum", [])) for _, node in _schemas(schema)) <= MAX_ENUM_VALUES
    jsonschema.Draft202012Validator.check_schema(schema)


def test_optional_values_are_nullable_unions_and_required_values_are_not() -> None:
    properties = strict_json_schema(ActionItem)["properties"]

    assert properties["title"]["type"] == "string"
    assert properties["dueDate"]["type"] == ["string", "null"]
    assert properties["sourceSegmentIds"]["type"] == "array"
    assert {"type": "null"} in properties["priority"]["anyOf"]
    assert {"type": "null"} in properties["intentMetadata"]["anyOf"]


@pytest.mark.parametrize("model", [Analysis, ActionItem, DiscussionPoint, SpeakerNamingAnswer])
def test_schema_properties_are_exactly_the_contract_fields(model: type[ContractModel]) -> None:
    assert set(strict_json_schema(model)["properties"]) == model.contract_keys()


def test_legacy_only_fields_are_not_offered_to_the_model() -> None:
    schema = analysis_response_format()["json_schema"]["schema"]
    defs = schema["$defs"]

    assert "legacySummaryBullets" not in schema["properties"]
    assert "ownerSpeaker" not in defs["ActionItem"]["properties"]
    assert "speaker" not in defs["SectionItem"]["properties"]
    assert {"speakerId", "speakerLabel", "speakerDisplayName", "speakerRole"}.isdisjoint(
        defs["DiscussionPoint"]["properties"]
    )
    assert "LegacySummaryBullet" not in defs
    assert schema["properties"]["schemaVersion"] == {"type": "integer", "enum": [3]}


def test_generated_schema_accepts_the_v3_fixture_and_the_sample_and_rejects_a_missing_key() -> None:
    schema = analysis_response_format()["json_schema"]["schema"]
    sample = build_sample_analysis(["seg_0001", "seg_0002"], ["spk_1", "spk_2"], "call-a")

    jsonschema.validate(load_fixture("analysis_v3.json"), schema)
    jsonschema.validate(sample, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(without_key(sample, "tone.pace"), schema)


def test_response_format_is_a_fresh_copy_each_time() -> None:
    first = analysis_response_format()
    first["json_schema"]["schema"]["properties"].clear()

    assert analysis_response_format()["json_schema"]["schema"]["properties"]


class _Map(ContractModel):
    counts: dict[str, int]


class _Constrained(ContractModel):
    code: str = Field(pattern=r"^[a-z]+$", max_length=8, description="Lowercase code.")
    ratio: float = Field(ge=0, le=1)


def test_free_form_maps_are_refused_at_generation_time() -> None:
    with pytest.raises(ValueError, match="free-form maps"):
        strict_json_schema(_Map)


def test_validation_only_keywords_are_dropped_from_the_schema_but_still_enforced() -> None:
    schema = strict_json_schema(_Constrained)

    assert schema["properties"] == {
        "code": {"type": "string", "description": "Lowercase code."},
        "ratio": {"type": "number"},
    }
    with pytest.raises(StrictOutputError):
        decode_strict_output(_Constrained, content='{"code": "ABC", "ratio": 2}', refusal=None, finish_reason="stop")
