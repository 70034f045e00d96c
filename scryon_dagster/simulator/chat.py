"""Simulated chat completions: answers that follow the requested JSON schema, with realistic usage.

A ``scryon_analysis`` request gets an analysis of the transcript in the prompt: the simulator's sample
document for the shape (valid for any transcript), its prose replaced by what the transcript says —
summary and outcome from its opening and closing lines, questions, decisions and action items from the
lines that ask, agree or commit, each citing its segment and owned by its speaker — so two calls about
different things get different analyses, as from a real model. Any other schema gets its smallest valid
instance.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from scryon_dagster.simulator.analysis_sample import build_sample_analysis

ANALYSIS_SCHEMA_NAME = "scryon_analysis"
_CALL_ID = re.compile(r"\bcallId\"?\s*[:=]\s*\"?([A-Za-z0-9_\-]+)")
_SEGMENT_ID = re.compile(r"\bseg_\d{4,}\b")
_SPEAKER_ID = re.compile(r"\bspk_\d+\b")
# one transcript line of the analysis prompt: ``[seg_0001  00:00-00:04] spk_1 (USER): text``
_SEGMENT_LINE = re.compile(r"^\[(seg_\d{4,})\s+[\d:.]+-[\d:.]+\]\s+(spk_\d+)\s+\(\w+\):\s*(.+)$", re.MULTILINE)
_COMMITMENT = re.compile(r"\b(I will|I'll|I can|we will|we'll|I am going to|please send|let me)\b", re.IGNORECASE)
_AGREEMENT = re.compile(r"\b(that works|sounds good|agreed|deal|let's|works for us|perfect)\b", re.IGNORECASE)
_INTENTS = (
    ("email", re.compile(r"\b(send|e-?mail|notes|quote)\b", re.I)),
    ("meeting", re.compile(r"\b(schedule|meeting|check-in|demo)\b", re.I)),
    ("call", re.compile(r"\b(call (you|back)|ring)\b", re.I)),
)
_TEXT_LIMIT = 160
_CACHE_MINIMUM_TOKENS = 1024
_CACHE_INCREMENT_TOKENS = 128


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def find_call_id(text: str) -> str | None:
    match = _CALL_ID.search(text)
    return match.group(1) if match else None


def analysis_answer(user_message: str) -> dict[str, Any]:
    segments = [_Segment(*match) for match in _SEGMENT_LINE.findall(user_message)]
    document = build_sample_analysis(
        _unique(_SEGMENT_ID.findall(user_message)),
        _unique(_SPEAKER_ID.findall(user_message)),
        find_call_id(user_message) or "unknown",
    )
    return _about(document, segments) if segments else document


@dataclass(frozen=True)
class _Segment:
    id: str
    speaker: str
    text: str


def _about(document: dict[str, Any], segments: list[_Segment]) -> dict[str, Any]:
    """The sample document with its prose taken from the transcript's own lines."""
    opening, closing = segments[0], segments[-1]
    middle = segments[len(segments) // 2]
    questions = [segment for segment in segments if segment.text.rstrip().endswith("?")]
    agreements = [segment for segment in segments if _AGREEMENT.search(segment.text)]
    commitments = [segment for segment in segments if _COMMITMENT.search(segment.text)]
    speakers = _unique([segment.speaker for segment in segments])
    topic = max(segments, key=lambda segment: len(segment.text.split()))
    document.update(
        suggestedTitle=_clip(topic.text, 60),
        oneLineSummary=_clip(f"A call between {len(speakers)} speakers: {topic.text}"),
        executiveSummary=_clip(f"{opening.text} {topic.text} {closing.text}", 600),
        executiveSummaryBullets=[
            {"header": header, "startTimestamp": None, "paragraphs": [_clip(segment.text)]}
            for header, segment in (("Opening", opening), ("Discussion", middle), ("Closing", closing))
        ],
        conversationOutcome=_clip(closing.text),
        actionItems=[_action_item(document, segment) for segment in commitments],
        nextSteps=[
            {
                "text": _clip(segment.text),
                "ownerSpeaker": segment.speaker,
                "when": None,
                "sourceSegmentIds": [segment.id],
            }
            for segment in commitments[:1]
        ],
        decisions=[{"text": _clip(segment.text), "sourceSegmentIds": [segment.id]} for segment in agreements],
        openQuestions=[{"text": _clip(segment.text), "sourceSegmentIds": [segment.id]} for segment in questions],
        risks=[],
        numbersAndAmounts=[],
        tags=_keywords(segments),
    )
    return document


def _action_item(document: dict[str, Any], segment: _Segment) -> dict[str, Any]:
    """The sample's action item of the same intent (for its metadata's shape), retold from the line."""
    intent = next((name for name, pattern in _INTENTS if pattern.search(segment.text)), "task")
    template = next((item for item in document["actionItems"] if item["intent"] == intent), document["actionItems"][0])
    title = _clip(segment.text, 80)
    metadata: dict[str, Any] = {key: None for key in template["intentMetadata"]} | {"attendees": []}
    if intent == "meeting":
        metadata.update(title=title, durationMinutes=30)
    return {
        **template,
        "title": title,
        "description": _clip(segment.text),
        "intent": intent,
        "intentMetadata": metadata,
        "ownerSpeakerId": segment.speaker,
        "sourceSegmentIds": [segment.id],
        "sourceText": None,
    }


# words of four letters or more (shorter ones are never keywords) that say nothing about the topic
_STOPWORDS = frozenset(
    {"have", "this", "that", "what", "when", "will", "with", "your", "thanks", "thank", "hello", "great", "sounds",
     "good", "both", "please", "there", "they", "them", "then", "from", "just", "about", "would", "could"}
)  # fmt: skip


def _keywords(segments: list[_Segment]) -> list[str]:
    # lower-case words only: names (and sentence openings) are capitalised, and a tag is never a name
    words = re.findall(r"\b(?<!['-])[a-z]{4,}\b(?!['-])", " ".join(segment.text for segment in segments))
    counts = Counter(word for word in words if word not in _STOPWORDS)
    return [word for word, _ in counts.most_common(3)]


def _clip(text: str, limit: int = _TEXT_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


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
