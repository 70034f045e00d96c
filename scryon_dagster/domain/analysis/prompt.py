"""The analysis chat completion: system rules, the privacy-minimal user prompt, the strict schema.

What reaches the model: callId, recordedAt, durationSeconds, the call title (contact details and call
metadata names masked), the transcript language, and per segment its id, speakerId, role, times and
text (e-mail addresses and any phone-like number masked again). Speaker labels and display names,
phone numbers, e-mails, contact names and user ids are never sent: ownership is expressed through
``speakerId`` and mapped back to names in code.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scryon_dagster.domain.analysis.contract import response_format
from scryon_dagster.domain.analysis.models import CURRENT_SCHEMA_VERSION, Analysis
from scryon_dagster.domain.analysis.redaction import mask_contact_details, mask_names
from scryon_dagster.domain.transcript.models import NormalizedTranscript, Role, TranscriptSegment
from scryon_dagster.domain.transcript.rendering import format_timestamp

ANALYSIS_SCHEMA_NAME = "scryon_analysis"

ANALYSIS_SYSTEM_PROMPT = f"""\
You analyse one recorded phone call for the person who recorded it. The input is the call's metadata \
and its transcript, one segment per line: `[segment id  start-end] speakerId (role): text`. Role USER is \
the person who recorded the call, CONTACT the other party, UNKNOWN not yet resolved.

Answer with one JSON object that follows the response schema exactly, with schemaVersion \
{CURRENT_SCHEMA_VERSION}.

Grounding
- Use only what the transcript says. Never invent names, dates, times, amounts, e-mail addresses or \
phone numbers: leave a field null or a list empty when the transcript does not support it.
- Cite evidence: every sourceSegmentIds array lists the ids of the segments that support the item, \
copied exactly from the transcript (seg_NNNN). Never cite an id that is not in the transcript; use an \
empty array only when no segment applies.
- Masked text such as [email], [name] or [number ending 1234] stays masked; never reconstruct it.
- Dates (dueDate, importantDates.date) only as YYYY-MM-DD, and only when the transcript states the day \
or it follows unambiguously from recordedAt ("tomorrow", "next Friday"); otherwise null.

Writing
- Speaker-neutral narrative: executiveSummary, executiveSummaryBullets, sections and \
keyDiscussionPoints say what was discussed, decided or agreed, not who said it ("A revised quote was \
requested", not "Speaker 2 asked for a revised quote"). Never write speaker ids, "Speaker 1", "the USER" \
or "the CONTACT" in human-readable text. Use a person's name only when the transcript states it and \
naming the person matters.
- Each fact appears once, in its best home. executiveSummary: a 2-4 sentence headline. \
executiveSummaryBullets: the detailed summary, 3 to 6 sections in call order, each with a short header, \
the startTimestamp (MM:SS, HH:MM:SS past an hour) of its first segment, and one or more self-contained \
paragraphs covering everything material in that part of the call. keyDiscussionPoints: only when the \
chronological flow adds something the sections do not (may be empty). sections: only when a thematic \
grouping adds structure beyond the summary (may be empty).
- Be specific: include the names, amounts, dates and outcomes the transcript gives; no generic filler.

Action items and next steps
- actionItems are discrete tasks a client app could launch: schedule a meeting, send an e-mail, call \
back, send a message, set a reminder, track a task. Set intent to meeting, email, call, message, \
reminder, task or none, and fill intentMetadata only with details stated in the transcript \
(providerHint only when the tool was named). priority is low, medium or high.
- Owner: ownerSpeakerId is the speakerId of whoever will do it and ownerRole that speaker's role; both \
null when unclear. ownerSpeakerLabel and ownerDisplayName carry only a name the transcript states for \
that speaker, else null. sourceText is a short verbatim excerpt of the cited segment.
- nextSteps are planned, forward-looking activities ("I'll prepare the deck", "we'll revisit this next \
week") that are not discrete launchable tasks; ownerSpeaker is the speakerId, when is the timing as \
spoken. Never list the same thing as both an action item and a next step.
- followUps is superseded by nextSteps: always return an empty array.

Sentiment and tone
- sentiment is polarity: overall, score in [-1.0, 1.0] (null only when truly unclear) and a short \
reason; userSentiment and contactSentiment read each party separately and may disagree; progression \
has 2-4 moments (opening, middle, closing, followup) that capture shifts; emotionalSignals are 0-6 \
adjectives grounded in the transcript.
- tone is register, not polarity: overall, 1-4 descriptors, formality, energy, pace, 1-2 sentences of \
notes, and per-party tone in byParty.
- Prefer "unclear" and smaller magnitudes when the speakers are brief or the evidence is thin.

Other fields
- callType, suggestedTitle (a short headline), oneLineSummary (one sentence), conversationOutcome \
(what was decided or resolved, null if nothing was).
- decisions, commitments, openQuestions, risks, opportunities, importantDates, peopleMentioned (names \
exactly as spoken), numbersAndAmounts (figures as spoken): one entry per distinct item, empty when none.
- tags: up to 6 short lowercase tags. qualityWarnings: transcript or audio problems that limit the \
analysis (for example "very short call", "speaker attribution uncertain"), else empty.
"""


@dataclass(frozen=True)
class AnalysisPrompt:
    system: str
    user: str

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


def build_analysis_prompt(
    transcript: NormalizedTranscript,
    *,
    call_id: str,
    recorded_at: datetime | None,
    duration_seconds: float | None,
    title: str | None,
    withheld_names: Iterable[str] = (),
    part: tuple[int, int] | None = None,
) -> AnalysisPrompt:
    """The two messages of the analysis completion.

    ``withheld_names`` are call-metadata names (the contact's, the user's display name) to mask in the
    title, which users often write as "Call with <name>". ``part`` (index, count) marks a transcript that
    is one consecutive part of a call too long for one request (``chunking.plan_analysis_parts``).
    """
    metadata = [
        f"callId: {call_id}",
        f"recordedAt: {recorded_at.isoformat() if recorded_at else 'unknown'}",
        f"durationSeconds: {_format_seconds(duration_seconds)}",
        f"title: {_safe_title(title, withheld_names)}",
    ]
    user = "\n".join(
        [
            "Call metadata",
            *metadata,
            "",
            "Transcript",
            f"language: {transcript.language or 'unknown'}",
            f"durationSeconds: {_format_seconds(transcript.duration_seconds)}",
            f"speakers: {', '.join(f'{s.speaker_id} ({s.role.value})' for s in transcript.speakers) or 'none'}",
            *([_part_line(*part)] if part else []),
            *render_segment_lines(transcript),
        ]
    )
    return AnalysisPrompt(system=ANALYSIS_SYSTEM_PROMPT, user=user)


def render_segment_lines(transcript: NormalizedTranscript) -> list[str]:
    """One ``[seg_0001  00:00-00:04] spk_1 (USER): text`` line per segment, contact details masked.

    The role comes from the speaker record (the naming ladder's verdict), the segment's copy as fallback.
    """
    roles = {speaker.speaker_id: speaker.role for speaker in transcript.speakers}
    return [_segment_line(segment, roles.get(segment.speaker_id, segment.role)) for segment in transcript.segments]


def _segment_line(segment: TranscriptSegment, role: Role) -> str:
    span = f"{format_timestamp(segment.start_seconds)}-{format_timestamp(segment.end_seconds)}"
    text = mask_contact_details(" ".join(segment.text.split()))
    return f"[{segment.id}  {span}] {segment.speaker_id} ({role.value}): {text}"


def _part_line(index: int, count: int) -> str:
    return (
        f"part: {index} of {count} (the call is too long for one request: analyse the segments of this part;"
        " the other parts are analysed separately and merged)"
    )


def _format_seconds(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.1f}"


def _safe_title(title: str | None, withheld_names: Iterable[str]) -> str:
    if not title or not title.strip():
        return "none"
    return mask_names(mask_contact_details(" ".join(title.split())), withheld_names)


@functools.cache
def _analysis_response_format() -> dict[str, Any]:
    return response_format(ANALYSIS_SCHEMA_NAME, Analysis)


def analysis_response_format() -> dict[str, Any]:
    """The ``response_format`` of the analysis request (a fresh copy: callers may serialise or mutate it)."""
    return copy.deepcopy(_analysis_response_format())
