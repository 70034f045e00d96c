"""The reference's legacy aliases on a served analysis, for mobile builds that read the pre-v2 names.

Added when serving only; the stored ``ANALYSIS_JSON`` is left as the pipeline wrote it. As in the
reference, an alias is added only when the field it mirrors is present, and a name the document
already carries (an artifact stored in a legacy shape) is never overwritten.
"""

from __future__ import annotations

from typing import Any

HIGH_IMPORTANCE = "high"


def with_legacy_aliases(analysis: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``analysis`` with ``shortSummary``, ``detailedSummary``, ``keyPoints`` and each
    action item's ``ownerSpeaker``."""
    served = dict(analysis)
    for alias, source in (("shortSummary", "oneLineSummary"), ("detailedSummary", "executiveSummary")):
        if isinstance(served.get(source), str) and alias not in served:
            served[alias] = served[source]
    sections = served.get("sections")
    if isinstance(sections, list) and "keyPoints" not in served:
        served["keyPoints"] = _high_importance_items(sections)
    action_items = served.get("actionItems")
    if isinstance(action_items, list):
        served["actionItems"] = [_with_owner_speaker(item) for item in action_items]
    return served


def _high_importance_items(sections: list[Any]) -> list[str]:
    """The text of every section item of high importance, in section then item order."""
    return [
        item["text"]
        for section in sections
        if isinstance(section, dict) and isinstance(section.get("items"), list)
        for item in section["items"]
        if isinstance(item, dict) and item.get("importance") == HIGH_IMPORTANCE and isinstance(item.get("text"), str)
    ]


def _with_owner_speaker(item: Any) -> Any:
    # ``ownerSpeaker`` is the legacy name of ``ownerSpeakerLabel``.
    if isinstance(item, dict) and "ownerSpeakerLabel" in item and item.get("ownerSpeaker") is None:
        return {**item, "ownerSpeaker": item["ownerSpeakerLabel"]}
    return item
