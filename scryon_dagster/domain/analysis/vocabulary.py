"""The closed vocabularies of the call analysis (schema v3), from the reference documentation.

Lenient string enums: case, space, dash and underscore variants of a value read as that value
(``contract.py``).
"""

from __future__ import annotations

from scryon_dagster.domain.analysis.contract import LenientStrEnum


class CallType(LenientStrEnum):
    PERSONAL = "personal"
    BUSINESS = "business"
    SALES = "sales"
    SUPPORT = "support"
    INTERVIEW = "interview"
    FINANCE = "finance"
    HEALTHCARE = "healthcare"
    LEGAL = "legal"
    EDUCATION = "education"
    UNKNOWN = "unknown"
    OTHER = "other"


class Importance(LenientStrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Priority(LenientStrEnum):
    """Action-item priority on the wire (lowercase); the ``action_items`` column stores it uppercase."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Phase(LenientStrEnum):
    OPENING = "opening"
    MIDDLE = "middle"
    CLOSING = "closing"
    FOLLOWUP = "followup"


class LegacyBulletCategory(LenientStrEnum):
    """Category of a v1/v2 flat summary bullet."""

    CONTEXT = "context"
    OUTCOME = "outcome"
    NEXT_STEPS = "next_steps"
    CONCERN = "concern"
    AGREEMENT = "agreement"
    DECISION = "decision"
    BLOCKER = "blocker"
    OBSERVATION = "observation"
    TOPIC = "topic"


class SentimentLabel(LenientStrEnum):
    POSITIVE = "positive"
    NEUTRAL = "neutral"
    NEGATIVE = "negative"
    MIXED = "mixed"
    UNCLEAR = "unclear"


class ToneLabel(LenientStrEnum):
    """Headline register of a conversation (the reference's documented vocabulary)."""

    PROFESSIONAL = "professional"
    FRIENDLY = "friendly"
    TENSE = "tense"
    URGENT = "urgent"
    SUPPORTIVE = "supportive"
    TRANSACTIONAL = "transactional"
    ESCALATED = "escalated"
    EMPATHETIC = "empathetic"
    TERSE = "terse"
    PLAYFUL = "playful"
    CONFRONTATIONAL = "confrontational"
    INFORMATIONAL = "informational"
    CASUAL = "casual"
    FORMAL_BUSINESS = "formal-business"
    CONVERSATIONAL = "conversational"


class Formality(LenientStrEnum):
    FORMAL = "formal"
    SEMI_FORMAL = "semi-formal"
    INFORMAL = "informal"


class Energy(LenientStrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Pace(LenientStrEnum):
    SLOW = "slow"
    NORMAL = "normal"
    FAST = "fast"


class Intent(LenientStrEnum):
    """What a client could launch for an action item; the backend classifies, the client launches."""

    MEETING = "meeting"
    EMAIL = "email"
    CALL = "call"
    MESSAGE = "message"
    REMINDER = "reminder"
    TASK = "task"
    NONE = "none"


class ProviderHint(LenientStrEnum):
    """A client-side ordering hint, set only when the transcript named the tool explicitly."""

    MEET = "meet"
    ZOOM = "zoom"
    TEAMS = "teams"
    PHONE = "phone"
    WHATSAPP = "whatsapp"
    SMS = "sms"
    TELEGRAM = "telegram"


class MessageChannel(LenientStrEnum):
    WHATSAPP = "whatsapp"
    SMS = "sms"
    TELEGRAM = "telegram"
