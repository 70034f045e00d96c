"""Six scripted sample calls for the demo and tests, and the WAV files generated from them.

Each exercises a part of speaker naming: a greeting by name, a self-introduction with an organisation,
an answering-pattern opening, a voicemail, a three-party call and a call without names. The simulator
recognises a sample by its duration (distinct per sample, matched within ±0.25 s, which survives
resampling and re-encoding) and answers with outputs derived from the script. Every name, company and
phone number here is fictional (phone numbers use the reserved 555-01xx range).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from scryon_dagster.simulator.conversation import Conversation, Line, lay_out
from scryon_dagster.simulator.synthesis import synthesize_wav

DURATION_MATCH_TOLERANCE_SECONDS = 0.25


class CallDirection(StrEnum):
    """Who placed a sample call, spelt as the intake API's ``direction`` values."""

    INCOMING = "INCOMING"
    OUTGOING = "OUTGOING"


@dataclass(frozen=True)
class SampleCall:
    slug: str
    title: str
    direction: CallDirection
    contact_name: str | None
    phone_number: str | None
    user_display_name: str
    user_speaker: int | None
    """Which script speaker recorded the call (None: the user is not heard, as in a voicemail)."""
    lines: tuple[Line, ...]

    @property
    def conversation(self) -> Conversation:
        return _conversation(self)

    @property
    def duration_seconds(self) -> float:
        return self.conversation.duration

    @property
    def filename(self) -> str:
        return f"{self.slug}.wav"


@functools.cache
def _conversation(sample: SampleCall) -> Conversation:
    return lay_out(sample.lines, seed=sum(map(ord, sample.slug)), user_speaker=sample.user_speaker)


def _lines(*turns: tuple[int, str]) -> tuple[Line, ...]:
    return tuple(Line(speaker, text) for speaker, text in turns)


SAMPLE_CALLS: tuple[SampleCall, ...] = (
    SampleCall(
        slug="greeting_by_name",
        title="Delivery schedule with Praveen",
        direction=CallDirection.OUTGOING,
        contact_name="Praveen Raman",
        phone_number="+12025550143",
        user_display_name="Alex Morgan",
        user_speaker=0,
        lines=_lines(
            (0, "Hi Praveen, thanks for picking up. Do you have a few minutes to go over the delivery schedule?"),
            (1, "Sure, I was expecting your call. The first shipment leaves the warehouse on Thursday."),
            (0, "Great. Can we move the second shipment to the following Monday?"),
            (1, "That should work. I will confirm with the carrier and send you an email by tomorrow."),
            (0, "Perfect, please include the updated invoice as well."),
            (1, "Will do. Anything else on your side?"),
            (0, "No, that covers it. Thanks Praveen, talk soon."),
            (1, "Bye for now."),
        ),
    ),
    SampleCall(
        slug="self_introduction",
        title="Plan renewal",
        direction=CallDirection.INCOMING,
        contact_name=None,
        phone_number="+12025550178",
        user_display_name="Alex Morgan",
        user_speaker=0,
        lines=_lines(
            (0, "Good afternoon."),
            (1, "Hi, this is Jimmy from DocuSign. I am calling about the renewal of your team plan."),
            (0, "Oh right, we got the reminder last week."),
            (1, "Your current plan ends on the fifteenth. We can keep the same price if you renew for two years."),
            (0, "Could you send that offer in writing? I need to run it by our finance team first."),
            (1, "Absolutely, I will email it today. When would be a good time to follow up?"),
            (0, "Friday morning works for me."),
            (1, "Friday morning it is. Thanks for your time, and have a good day."),
            (0, "You too, goodbye."),
        ),
    ),
    SampleCall(
        slug="answering_pattern",
        title="Tomorrow's client meeting",
        direction=CallDirection.INCOMING,
        contact_name=None,
        phone_number=None,
        user_display_name="Alex Morgan",
        user_speaker=0,
        lines=_lines(
            (0, "Hello?"),
            (1, "Hey, it's me. Are you still at the office?"),
            (0, "Yes, I am finishing the quarterly report. What's up?"),
            (1, "The client moved the meeting to nine tomorrow morning. Can you bring the printed slides?"),
            (0, "Sure, I will print them tonight before I leave."),
            (1, "Thanks. And remind me to call the venue about the projector."),
            (0, "Will do. See you tomorrow."),
        ),
    ),
    SampleCall(
        slug="voicemail",
        title="Voicemail",
        direction=CallDirection.INCOMING,
        contact_name="Northwind Dental",
        phone_number="+12025550119",
        user_display_name="Alex Morgan",
        user_speaker=None,
        lines=_lines(
            (
                0,
                "Hi, this is a message for Alex from Northwind Dental. We are calling to confirm your "
                "appointment next Tuesday at ten thirty in the morning. Please call us back at your "
                "convenience to confirm or to reschedule. If we do not hear from you, we will keep the "
                "appointment as planned. Thank you, and have a great day.",
            ),
        ),
    ),
    SampleCall(
        slug="three_party",
        title="Integration issue follow-up",
        direction=CallDirection.OUTGOING,
        contact_name="Maria Lopez",
        phone_number="+12025550161",
        user_display_name="Alex Morgan",
        user_speaker=0,
        lines=_lines(
            (0, "Hi Maria, I have Tom from engineering on the line as well."),
            (1, "Hi both, thanks for setting this up so quickly."),
            (2, "Hello Maria. I looked at the integration logs this morning."),
            (1, "Great, what did you find?"),
            (2, "The sync job fails when the export file is larger than two hundred megabytes."),
            (0, "Can we split the export into smaller batches as a workaround for now?"),
            (2, "Yes, that works. I can ship a proper fix by Wednesday."),
            (1, "That works for us. Please send the release notes when it is out."),
            (0, "I will schedule a check-in for Thursday afternoon."),
            (1, "Sounds good. Thank you both."),
        ),
    ),
    SampleCall(
        slug="no_names",
        title="Order status",
        direction=CallDirection.INCOMING,
        contact_name=None,
        phone_number="+12025550107",
        user_display_name="Alex Morgan",
        user_speaker=0,
        lines=_lines(
            (0, "Good morning, how can I help you?"),
            (1, "Hi, I am calling about the order I placed last week. It has not arrived yet."),
            (0, "I am sorry to hear that. Do you have the order number at hand?"),
            (1, "Yes, it is on the confirmation email. It starts with four seven two."),
            (0, "Thank you. It looks like the package is being held at the local depot."),
            (1, "Can it be delivered tomorrow instead?"),
            (0, "I will request a redelivery for tomorrow before noon."),
            (1, "Great, thank you very much."),
        ),
    ),
)


def find_sample(duration_seconds: float) -> SampleCall | None:
    """The sample whose duration is within ±0.25 s of ``duration_seconds``."""
    for sample in SAMPLE_CALLS:
        if abs(sample.duration_seconds - duration_seconds) <= DURATION_MATCH_TOLERANCE_SECONDS:
            return sample
    return None


@dataclass(frozen=True)
class SamplePath:
    sample: SampleCall
    path: Path


def generate_sample_audio(directory: Path | str) -> list[SamplePath]:
    """Write every sample as ``<slug>.wav`` (16 kHz mono 16-bit) into ``directory``; same bytes every time."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for sample in SAMPLE_CALLS:
        path = target / sample.filename
        path.write_bytes(synthesize_wav(sample.conversation))
        written.append(SamplePath(sample, path))
    return written
