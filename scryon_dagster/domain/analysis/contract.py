"""The machinery shared by every LLM output contract: models, strict schema, strict decoding.

One pydantic model family is the single source of truth for an LLM answer:

* ``strict_json_schema(model)`` derives the schema sent with ``response_format`` (OpenAI strict mode:
  every object closed with ``additionalProperties: false``, every property required, optional values as
  ``["<type>", "null"]`` unions or ``anyOf`` with null, only the keywords of the strict subset).
* ``decode_strict_output(model, ...)`` checks a completion against the same models in *strict* mode:
  exactly the contract's keys on every object, exact types, no legacy-only fields.
* Without the strict context the same models read stored artifacts *leniently*: absent fields take
  their defaults, ``null`` lists are empty, unknown keys are kept (``extra="allow"``) so nothing is lost.

Fields wrapped in ``SkipJsonSchema`` are legacy-only: readable from old artifacts, never part of the
schema sent to the model and refused in a strict answer.
"""

from __future__ import annotations

import functools
import re
from enum import StrEnum
from typing import Any, TypeVar, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema

_STRICT_CONTEXT_KEY = "scryon_strict_output"

_ModelT = TypeVar("_ModelT", bound="ContractModel")


def is_strict(info: ValidationInfo) -> bool:
    """Whether this validation checks an LLM answer (strict) rather than reading a stored artifact."""
    return bool(info.context and info.context.get(_STRICT_CONTEXT_KEY))


class LenientStrEnum(StrEnum):
    """A string enum that also accepts case, space, dash and underscore variants ("Semi_Formal")."""

    @classmethod
    def _missing_(cls, value: object) -> LenientStrEnum | None:
        if not isinstance(value, str):
            return None
        wanted = _enum_key(value)
        return next((member for member in cls if _enum_key(member.value) == wanted), None)


@functools.cache
def _contract_keys(model: type[ContractModel]) -> frozenset[str]:
    return frozenset(
        field.alias or name
        for name, field in model.model_fields.items()
        # SkipJsonSchema is an Annotated alias to mypy but a marker class at runtime.
        if not any(isinstance(marker, SkipJsonSchema) for marker in field.metadata)  # type: ignore[misc]
    )


@functools.cache
def _list_fields(model: type[ContractModel]) -> frozenset[str]:
    return frozenset(name for name, field in model.model_fields.items() if get_origin(field.annotation) is list)


def _enum_key(value: str) -> str:
    return re.sub(r"[^a-z0-9]", "", value.casefold())


class ContractModel(BaseModel):
    """Base of every LLM contract model: camelCase on the wire, snake_case in Python, immutable."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True)

    @classmethod
    def contract_keys(cls) -> frozenset[str]:
        """The wire names an LLM answer must carry on this object: every field except legacy-only ones."""
        return _contract_keys(cls)

    @model_validator(mode="before")
    @classmethod
    def _exact_keys_when_strict(cls, data: Any, info: ValidationInfo) -> Any:
        if is_strict(info) and isinstance(data, dict) and set(data) != cls.contract_keys():
            # Key names are model-generated text: count them, never echo them.
            missing = len(cls.contract_keys() - set(data))
            unexpected = len(set(data) - cls.contract_keys())
            raise ValueError(f"object keys differ from the contract ({missing} missing, {unexpected} unexpected)")
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _null_list_is_empty_when_lenient(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and not is_strict(info) and info.field_name in _list_fields(cls):
            return []
        return value


# --- strict JSON schema ------------------------------------------------------------------------------

# The structural keywords OpenAI strict mode understands. ``description`` is kept on properties: it is
# how the model learns a field's format ("YYYY-MM-DD or null").
_KEPT_KEYWORDS = frozenset(
    {"type", "properties", "required", "additionalProperties", "items", "enum", "const", "anyOf", "$ref", "$defs"}
)
# Validation-only keywords pydantic emits that strict mode (or many OpenAI-compatible servers) rejects;
# the pydantic models still enforce them when the answer is decoded.
_DROPPED_KEYWORDS = frozenset(
    {
        "title",
        "default",
        "examples",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "pattern",
        "format",
    }
)


def strict_json_schema(model: type[ContractModel]) -> dict[str, Any]:
    """The OpenAI strict-mode JSON schema of ``model`` (root object with ``$defs``)."""
    generated = model.model_json_schema(by_alias=True, mode="validation")
    return _strictify(generated)


def _strictify(node: Any) -> Any:
    if isinstance(node, list):
        return [_strictify(item) for item in node]
    if not isinstance(node, dict):
        return node
    unknown = set(node) - _KEPT_KEYWORDS - _DROPPED_KEYWORDS - {"description"}
    if unknown:
        raise ValueError(f"schema keyword(s) outside the strict subset: {sorted(unknown)}")
    if isinstance(node.get("additionalProperties"), dict):
        raise ValueError("free-form maps cannot be expressed in strict mode; model the keys as fields")
    if "$ref" in node:
        # Siblings of $ref (a field description) are not portable; the referenced definition stands alone.
        return {"$ref": node["$ref"]}
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYWORDS:
            continue
        if key in ("properties", "$defs"):
            result[key] = {name: _strictify(child) for name, child in value.items()}
        elif key == "description":
            result[key] = value
        else:
            result[key] = _strictify(value)
    if "properties" in result or result.get("type") == "object":
        result.setdefault("properties", {})
        result["required"] = list(result["properties"])
        result["additionalProperties"] = False
    if "properties" in result or "enum" in result:
        # Model and enum docstrings are developer documentation, not instructions for the model.
        result.pop("description", None)
    return _collapse_nullable(result)


def _collapse_nullable(node: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [{type: T, ...}, {type: null}]`` → ``{type: [T, "null"], ...}`` for plain (non-ref) types."""
    branches = node.get("anyOf")
    if not isinstance(branches, list) or len(branches) != 2 or {"type": "null"} not in branches:
        return node
    other = branches[0] if branches[1] == {"type": "null"} else branches[1]
    if "$ref" in other or "anyOf" in other or not isinstance(other.get("type"), str):
        return node
    collapsed = {key: value for key, value in node.items() if key != "anyOf"}
    collapsed.update(other)
    collapsed["type"] = [other["type"], "null"]
    return collapsed


def response_format(name: str, model: type[ContractModel]) -> dict[str, Any]:
    """The ``response_format`` body member for an OpenAI-compatible chat completion."""
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": strict_json_schema(model)}}


# --- strict decoding ---------------------------------------------------------------------------------


class StrictOutputFailure(StrEnum):
    """Why a completion could not be accepted. Stable, content-free reason codes."""

    REFUSAL = "refusal"
    TRUNCATED = "truncated"
    CONTENT_FILTER = "content_filter"
    UNEXPECTED_FINISH_REASON = "unexpected_finish_reason"
    EMPTY_OUTPUT = "empty_output"
    INVALID_JSON = "invalid_json"
    SCHEMA_VIOLATION = "schema_violation"
    UNKNOWN_SEGMENT_IDS = "unknown_segment_ids"


_ACCEPTED_FINISH_REASONS = frozenset({None, "stop"})
_MAX_REPORTED_VIOLATIONS = 10


class StrictOutputError(ValueError):
    """A completion that does not satisfy its contract. Carries a reason code and content-free paths only."""

    def __init__(self, reason: StrictOutputFailure, violations: tuple[str, ...] = ()) -> None:
        self.reason = reason
        self.violations = violations
        super().__init__(reason.value if not violations else f"{reason.value} at {', '.join(violations)}")


def decode_strict_output(
    model: type[_ModelT], *, content: str | None, refusal: str | None, finish_reason: str | None
) -> _ModelT:
    """Accept a completion only if it is a complete, non-refused answer that satisfies ``model`` exactly."""
    if refusal:
        raise StrictOutputError(StrictOutputFailure.REFUSAL)
    if finish_reason == "length":
        raise StrictOutputError(StrictOutputFailure.TRUNCATED)
    if finish_reason == "content_filter":
        raise StrictOutputError(StrictOutputFailure.CONTENT_FILTER)
    if finish_reason not in _ACCEPTED_FINISH_REASONS:
        raise StrictOutputError(StrictOutputFailure.UNEXPECTED_FINISH_REASON)
    if content is None or not content.strip():
        raise StrictOutputError(StrictOutputFailure.EMPTY_OUTPUT)
    try:
        # JSON input keeps strict mode meaningful for enums (a JSON string is a valid enum input).
        return model.model_validate_json(content, strict=True, context={_STRICT_CONTEXT_KEY: True})
    except ValidationError as exc:
        # ``from None``: the pydantic error quotes input values, which are transcript-derived.
        if any(error["type"] == "json_invalid" for error in exc.errors(include_input=False)):
            raise StrictOutputError(StrictOutputFailure.INVALID_JSON) from None
        raise StrictOutputError(StrictOutputFailure.SCHEMA_VIOLATION, _violation_paths(exc)) from None


def _violation_paths(exc: ValidationError) -> tuple[str, ...]:
    paths = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False)[:_MAX_REPORTED_VIOLATIONS]:
        location = ".".join(str(part) if isinstance(part, int) else _safe_key(part) for part in error["loc"])
        paths.append(f"{location or '<root>'}:{error['type']}")
    return tuple(paths)


def _safe_key(part: str | int) -> str:
    # Locations are contract field names and pydantic's union-branch tags; anything else is withheld.
    text = str(part)
    return text if re.fullmatch(r"[A-Za-z][A-Za-z0-9_\[\]-]{0,40}", text) else "<key>"
