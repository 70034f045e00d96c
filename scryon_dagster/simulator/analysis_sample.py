"""A realistic, schema-valid analysis answer for any transcript: the simulated LLM's reply.

Written from the analysis JSON shape in the spec (schema v3), not from the product's models, so a
drift between what the product validates and what the simulator answers fails a test
(tests/unit/analysis/test_sample.py validates it with the product's validation).
Deterministic: the same ids always give the same document. The scenario is chosen from the call id,
citations only use the given segment ids (spread over the call: opening, middle, closing) and owners
only the given speaker ids. Nothing in it is derived from transcript text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

ANALYSIS_SCHEMA_VERSION = 3


@dataclass(frozen=True)
class _Scenario:
    call_type: str
    title: str
    one_line: str
    summary: str
    sections: tuple[tuple[str, str], ...]
    outcome: str
    decision: str
    question: str
    risk: str
    amount: tuple[str, str]
    email_task: tuple[str, str, str]
    meeting_task: tuple[str, str]
    next_step: tuple[str, str]
    tags: tuple[str, ...]
    tone: tuple[str, str, str, str]


_SCENARIOS = (
    _Scenario(
        call_type="sales",
        title="Pricing follow-up and demo planning",
        one_line="The proposal's pricing was reviewed and a product demo was agreed for later this week.",
        summary=(
            "The call reviewed the current proposal and the concerns about per-seat pricing. "
            "A revised quote and a product demo with the wider team were agreed as the way forward."
        ),
        sections=(
            ("Proposal Review", "The current proposal was walked through, including scope and rollout."),
            ("Pricing Concerns", "Per-seat pricing was raised as the main obstacle to approval."),
            ("Agreed Next Steps", "A revised quote will be sent and a demo with the wider team scheduled."),
        ),
        outcome="A revised quote will be prepared and a demo scheduled.",
        decision="Proceed with a demo for the wider team before a final decision.",
        question="Whether a volume discount applies above fifty seats.",
        risk="Approval may stall if the revised price is not lower.",
        amount=("$99 per seat", "Current list price under discussion."),
        email_task=(
            "Send the revised quote",
            "Prepare and e-mail the revised pricing reflecting the discussed seat count.",
            "Revised quote",
        ),
        meeting_task=("Schedule the product demo", "Set up a demo session with the wider team."),
        next_step=("Review the internal budget before the demo.", "this week"),
        tags=("sales", "pricing", "demo"),
        tone=("professional", "semi-formal", "medium", "normal"),
    ),
    _Scenario(
        call_type="support",
        title="Service outage troubleshooting",
        one_line="An intermittent service outage was diagnosed and a fix with a follow-up check was agreed.",
        summary=(
            "The call worked through an intermittent outage affecting daily work. "
            "A configuration fix was applied and a follow-up check was agreed to confirm stability."
        ),
        sections=(
            ("Problem Description", "Intermittent outages during working hours were described in detail."),
            ("Diagnosis", "The outages were traced to a configuration change made earlier in the month."),
            ("Resolution and Follow-up", "The change was reverted and a follow-up check was agreed."),
        ),
        outcome="The configuration change was reverted; stability will be confirmed in a follow-up.",
        decision="Revert the recent configuration change.",
        question="Whether the outage affected other accounts.",
        risk="The outage may recur if the root cause is different.",
        amount=("three outages", "Number of outages reported this week."),
        email_task=(
            "Send the incident summary",
            "E-mail a short summary of the cause and the fix applied.",
            "Incident summary",
        ),
        meeting_task=("Book the follow-up check", "Schedule a short call to confirm the service is stable."),
        next_step=("Monitor the service for further interruptions.", "over the next few days"),
        tags=("support", "outage", "follow-up"),
        tone=("supportive", "semi-formal", "medium", "normal"),
    ),
)


def build_sample_analysis(segment_ids: list[str], speaker_ids: list[str], call_id: str) -> dict[str, Any]:
    """A schema v3 analysis document (JSON-ready) citing only ``segment_ids`` and ``speaker_ids``."""
    scenario = _SCENARIOS[int(hashlib.sha256(call_id.encode("utf-8")).hexdigest(), 16) % len(_SCENARIOS)]
    opening, middle, closing = (_cite(segment_ids, fraction) for fraction in (0.0, 0.5, 1.0))
    owner = speaker_ids[0] if speaker_ids else None
    other = speaker_ids[1] if len(speaker_ids) > 1 else owner
    subject = scenario.email_task[2]
    return {
        "schemaVersion": ANALYSIS_SCHEMA_VERSION,
        "callType": scenario.call_type,
        "suggestedTitle": scenario.title,
        "oneLineSummary": scenario.one_line,
        "executiveSummary": scenario.summary,
        "executiveSummaryBullets": [
            {"header": header, "startTimestamp": "00:00" if index == 0 else None, "paragraphs": [paragraph]}
            for index, (header, paragraph) in enumerate(scenario.sections)
        ],
        "conversationOutcome": scenario.outcome,
        "sections": [],
        "keyDiscussionPoints": [],
        "actionItems": [
            _action_item(scenario.email_task[0], scenario.email_task[1], "high", "email", owner, closing, subject),
            _action_item(scenario.meeting_task[0], scenario.meeting_task[1], "medium", "meeting", other, closing),
        ],
        "nextSteps": [
            {
                "text": scenario.next_step[0],
                "ownerSpeaker": other,
                "when": scenario.next_step[1],
                "sourceSegmentIds": closing,
            }
        ],
        "followUps": [],
        "importantDates": [],
        "decisions": [{"text": scenario.decision, "sourceSegmentIds": closing}],
        "commitments": [],
        "openQuestions": [{"text": scenario.question, "sourceSegmentIds": middle}],
        "risks": [{"text": scenario.risk, "severity": "medium", "sourceSegmentIds": middle}],
        "opportunities": [],
        "peopleMentioned": [],
        "numbersAndAmounts": [{"text": scenario.amount[1], "value": scenario.amount[0], "sourceSegmentIds": middle}],
        "sentiment": {
            "overall": "positive",
            "score": 0.4,
            "reason": "The conversation stayed constructive and ended with agreed actions.",
            "userSentiment": {"overall": "positive", "score": 0.4, "notes": "Focused on resolving the topic."},
            "contactSentiment": {"overall": "neutral", "score": 0.1, "notes": "Cautious but cooperative."},
            "progression": [
                {"phase": "opening", "overall": "neutral", "note": "Context was set.", "sourceSegmentIds": opening},
                {
                    "phase": "closing",
                    "overall": "positive",
                    "note": "Agreement on next steps.",
                    "sourceSegmentIds": closing,
                },
            ],
            "emotionalSignals": ["cooperative"],
        },
        "tone": {
            "overall": scenario.tone[0],
            "descriptors": ["measured", "cooperative"],
            "formality": scenario.tone[1],
            "energy": scenario.tone[2],
            "pace": scenario.tone[3],
            "notes": "Both sides stayed polite and focused on outcomes.",
            "byParty": {
                "userTone": {"overall": scenario.tone[0], "descriptors": ["calm"], "notes": "Steady throughout."},
                "contactTone": {"overall": "transactional", "descriptors": ["direct"], "notes": "To the point."},
            },
        },
        "tags": list(scenario.tags),
        "qualityWarnings": [] if segment_ids else ["empty transcript"],
    }


def _cite(segment_ids: list[str], fraction: float) -> list[str]:
    if not segment_ids:
        return []
    return [segment_ids[round(fraction * (len(segment_ids) - 1))]]


def _action_item(
    title: str,
    description: str,
    priority: str,
    intent: str,
    owner: str | None,
    citation: list[str],
    subject: str | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "providerHint": None,
        "attendees": [],
        "proposedAt": None,
        "durationMinutes": 30 if intent == "meeting" else None,
        "title": title if intent == "meeting" else None,
        "location": None,
        "toEmail": None,
        "toName": None,
        "subject": subject,
        "bodyPreview": description if intent == "email" else None,
        "phoneNumber": None,
        "contactName": None,
        "channel": None,
        "handle": None,
        "remindAt": None,
        "notes": None,
    }
    return {
        "title": title,
        "description": description,
        "dueDate": None,
        "priority": priority,
        "intent": intent,
        "intentMetadata": metadata,
        "ownerSpeakerId": owner,
        "ownerSpeakerLabel": None,
        "ownerDisplayName": None,
        "ownerRole": None,
        "sourceSegmentIds": citation,
        "sourceText": None,
    }
