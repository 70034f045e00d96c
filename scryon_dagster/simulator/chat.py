"""Simulated chat completions: answers that follow the requested JSON schema, with realistic usage.

A ``scryon_analysis`` request gets the domain's sample analysis, built only from the segment ids,
speaker ids and call id found in the prompt. Any other schema gets its smallest valid instance.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from typing import Any

from scryon_dagster.domain.analysis.sample import build_sample_analysis

ANALYSIS_SCHEMA_NAME = "scryon_analysis"
_CALL_ID = re.compile(r"\bcallId\"?\s*[:=]\s*\"?([A-Za-z0-9_\-]+)")
_SEGMENT_ID = re.compile(r"\bseg_\d{4,}\b")
_SPEAKER_ID = re.compile(r"\bspk_\d+\b")
_CACHE_MINIMUM_TOKENS = 1024
_CACHE_INCREMENT_TOKENS = 128


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def find_call_id(text: str) -> str | None:
    match = _CALL_ID.search(text)
    return match.group(1) if match else None


def analysis_answer(user_message: str) -> dict[str, Any]:
    return build_sample_analysis(
        _unique(_SEGMENT_ID.findall(user_message)),
        _unique(_SPEAKER_ID.findall(user_message)),
        find_call_id(user_message) or "unknown",
    )


def minimal_instance(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """The smallest value valid against a (strict, OpenAI-style) JSON schema."""
    root = root if root is not None else schema
    reference = schema.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/"):
        target: Any = root
        for part in reference[2:].split("/"):
            target = target[part]
        return minimal_instance(target, root)
    for combinator in ("anyOf", "oneOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            nullable = [option for option in options if option.get("type") == "null"]
            return minimal_instance((nullable or options)[0], root)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = "null" if "null" in kind else kind[0]
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: minimal_instance(properties[name], root) for name in schema.get("required", [])}
    if kind == "array":
        return [minimal_instance(schema.get("items", {}), root) for _ in range(schema.get("minItems", 0))]
    if kind == "string":
        return "x" * schema.get("minLength", 0)
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    return None


def estimate_tokens(text: str) -> int:
    """About four characters per token, as for English text with the GPT tokenizers."""
    return max(1, (len(text) + 3) // 4)


class PromptCache:
    """Mimics prompt caching: a repeated system prompt of 1024+ tokens is served from cache in
    128-token increments."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def cached_tokens(self, system: str) -> int:
        key = hashlib.sha256(system.encode()).hexdigest()
        tokens = estimate_tokens(system)
        hit = key in self._seen
        self._seen.add(key)
        if not hit or tokens < _CACHE_MINIMUM_TOKENS:
            return 0
        return tokens // _CACHE_INCREMENT_TOKENS * _CACHE_INCREMENT_TOKENS


def completion_document(
    *,
    model: str,
    content: str | None,
    refusal: str | None,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int,
) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-sim{secrets.token_hex(12)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal, "annotations": []},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_scryon_simulator",
    }
