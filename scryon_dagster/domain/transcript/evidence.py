"""What a transcript's text says about who is speaking: names, self-introductions, greetings, openings.

Pure text detection, no decisions (those are in ``naming``). English patterns plus the romanized
Hindi-English (and a few Devanagari) openings operators see on Indian calls. A name heard in the text is
only ever a name someone *said*; unknown names are accepted only in unmistakable self-introduction
phrases and only when capitalized as Whisper writes proper nouns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scryon_dagster.domain.transcript.tokens import split_text, token_key

_MAX_NAME_WORDS = 2
_HONORIFICS = frozenset({"mr", "mrs", "ms", "miss", "dr", "sir", "shri", "sri", "smt", "prof"})
# Capitalized words that follow "this is" / "my name is" without being anyone's name.
_NOT_NAMES_TEXT = """
    a about actually after all also am an and any anyone are as at back be because before being both but by
    calling can could customer did do does doing done either even every everyone for from fine going good
    great he hello her here hey hi him his how however i if in is it its just let like maybe me might mine
    more most my no none not nothing now of off ok okay on one only or other our out over please quite
    really regarding right she should so some someone something sorry speaking still such support sure
    team than thank thanks that the their them then there these they this those though to too us very
    was we well were what when where whether which while who whom whose why will with would yeah yes yet
    you your yours service department office bank company monday tuesday wednesday thursday friday
    saturday sunday january february march april may june july august september october november december
    today tomorrow yesterday morning afternoon evening night god english hindi haan ji main mera naam
    sir madam maam mam bhai
"""
_NOT_NAMES = frozenset(_NOT_NAMES_TEXT.split())

_NAME_WORD = r"[^\W\d_][\w'\u2019\-]*"
# Up to four words: the regex only finds the cue; code keeps the leading words that are plausible names.
_NAME = rf"(?P<name>(?:(?:mr|mrs|ms|dr|prof)\.?\s+)?{_NAME_WORD}(?:\s+{_NAME_WORD}){{0,3}}?)"
_ORGANIZATION = re.compile(
    rf"\s*,?\s+(?:calling\s+)?(?:from|with|at)\s+(?P<org>{_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}})"
)
_BOUNDARY_BEFORE = r"(?:^|(?<=[\s,.!?;:]))"
_LEADING_GREETING = r"(?:(?:hi|hello|hey|yes|yeah|haan|ji)[,.!]?\s+)?"
_ANY_ORGANIZATION = rf"(?:\s*,?\s+(?:calling\s+)?(?:from|with|at)\s+{_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}})?"

# Cues that introduce the speaker by name whatever the name is.
_INTRODUCTIONS = [
    re.compile(rf"\bthis\s+is\s+{_NAME}(?![\w'\u2019])", re.IGNORECASE),
    re.compile(rf"\bmy\s+name(?:'s|\u2019s|\s+is)\s+{_NAME}(?![\w'\u2019])", re.IGNORECASE),
    re.compile(rf"\byou(?:'re|\u2019re|\s+are)\s+(?:speaking|talking)\s+(?:with|to)\s+{_NAME}(?![\w'\u2019])", re.I),
    re.compile(rf"{_BOUNDARY_BEFORE}{_LEADING_GREETING}{_NAME}{_ANY_ORGANIZATION}\s+(?:speaking|here)\b", re.I),
    re.compile(rf"{_BOUNDARY_BEFORE}{_LEADING_GREETING}{_NAME}\s+this\s+side\b", re.IGNORECASE),
    # Hindi-English: "main Ravi bol raha hoon", "mera naam Ravi hai", "Ravi bol rahi hoon"
    re.compile(rf"\b(?:main|mai|mein)\s+{_NAME}\s+(?:\w+\s+se\s+)?bol\s+(?:raha|rahi|rha|rhi)\b", re.IGNORECASE),
    re.compile(rf"\bmera\s+naam\s+{_NAME}\s+(?:hai|he|h)\b", re.IGNORECASE),
    re.compile(
        rf"{_BOUNDARY_BEFORE}{_LEADING_GREETING}{_NAME}\s+bol\s+(?:raha|rahi|rha|rhi)\s+(?:hoon|hun|hu|hoo)\b", re.I
    ),
]
# Devanagari script has no capitals: one-word names (either script) in fixed phrases ("मैं रवि बोल रहा हूँ",
# "मेरा नाम रवि है").
_DEVANAGARI_INTRODUCTIONS = [
    re.compile(
        r"\u092e\u0948\u0902\s+(?P<name>[\u0900-\u097f]+|[^\W\d_]+)\s+\u092c\u094b\u0932\s+(?:\u0930\u0939\u093e|\u0930\u0939\u0940)"
    ),
    re.compile(r"\u092e\u0947\u0930\u093e\s+\u0928\u093e\u092e\s+(?P<name>[\u0900-\u097f]+|[^\W\d_]+)\s+\u0939\u0948"),
]
# Cues that are too common to accept an unknown name ("I'm Indian", "it's Monday"): known names only.
_KNOWN_NAME_INTRODUCTIONS = [
    re.compile(rf"\b(?:i'm|i\u2019m|i\s+am|it's|it\u2019s|it\s+is)\s+{_NAME}(?![\w'\u2019])", re.IGNORECASE),
]

# A caller speaking for an organisation without giving their own name: "this is a message for Alex from
# Northwind Dental", "we are calling from Northwind Dental". The organisation must be a known name (the
# contact's): "I got a call from the bank" is not an introduction, and no name is taken from these cues.
_ORGANIZATION_INTRODUCTIONS = [
    re.compile(
        rf"\b(?:this\s+is|it's|it\u2019s|it\s+is)\s+(?:a|an|just\s+a)\s+(?:\w+\s+)?(?:message|call|reminder)"
        rf"(?:\s+for\s+{_NAME_WORD}(?:\s+{_NAME_WORD})?)?\s+from\s+(?P<org>{_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}})",
        re.IGNORECASE,
    ),
    re.compile(
        rf"\b(?:i'm|i\u2019m|i\s+am|we're|we\u2019re|we\s+are)\s+(?:just\s+)?calling\s+(?:you\s+)?from\s+"
        rf"(?P<org>{_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}})",
        re.IGNORECASE,
    ),
]

_GREETING_WORDS = r"(?:hi|hello|hey|hiya|good\s+(?:morning|afternoon|evening)|namaste|namaskar|namaskaram|vanakkam)"
_SELF_INTRODUCTION_CUE = r"(?:\s*,?\s*(?:here|speaking|this\s+side|bol\s+(?:raha|rahi))\b)"

# What whoever picks up the phone says before the caller speaks: single words ("Hello?", "Yes?", "Speaking",
# "Haan bolo") and the set phrases of a receiver ("Good morning, how can I help you?", "Who is calling?").
_PICKUP_WORDS = frozenset(
    {
        "hello",
        "hallo",
        "hullo",
        "helo",
        "hi",
        "hey",
        "yes",
        "yeah",
        "speaking",
        "haan",
        "han",
        "haanji",
        "ji",
        "jee",
        "bolo",
        "boliye",
        "bolie",
        "namaste",
        "namaskar",
        token_key("\u0939\u093e\u0901"),  # haan
        token_key("\u0939\u093e\u0902"),  # haan (anusvara spelling)
        token_key("\u0939\u0947\u0932\u094b"),  # hello
        token_key("\u0939\u0948\u0932\u094b"),  # hello (alternate spelling)
        token_key("\u091c\u0940"),  # ji
        token_key("\u092c\u094b\u0932\u094b"),  # bolo
        token_key("\u092c\u094b\u0932\u093f\u090f"),  # boliye
    }
)
_PICKUP_PHRASES = (
    "good morning",
    "good afternoon",
    "good evening",
    "how can i help",
    "how may i help",
    "how can i help you",
    "how may i help you",
    "what can i do for you",
    "who is this",
    "whos this",
    "who is calling",
    "whos calling",
    "who is speaking",
)
# As key sequences, longest first: "how can i help you" is consumed whole, not as "how can i help" + "you".
_PICKUP_PHRASE_KEYS = tuple(sorted((tuple(phrase.split()) for phrase in _PICKUP_PHRASES), key=len, reverse=True))


@dataclass(frozen=True, slots=True)
class KnownName:
    """A name from metadata (user display name or contact name) and the forms it is heard in."""

    full: str
    variants: tuple[str, ...]
    """Lower-cased, whitespace-normalized forms: the full name and its given name."""

    def pattern(self) -> re.Pattern[str]:
        alternatives = "|".join(re.escape(variant).replace(r"\ ", r"\s+") for variant in self.variants)
        return re.compile(rf"(?<![\w])(?:{alternatives})(?![\w])", re.IGNORECASE)

    def matches(self, spoken: str) -> bool:
        normalized = " ".join(token_key(part) for part in split_text(spoken) if token_key(part))
        return normalized in self.variants or _without_honorific(normalized) in self.variants


@dataclass(frozen=True, slots=True)
class Introduction:
    name: str
    organization: str | None
    start: int
    end: int
    """Character span of the introduction in the text (excluded when counting name mentions)."""


def known_name(raw: str | None) -> KnownName | None:
    if raw is None or not raw.strip():
        return None
    full = " ".join(raw.split())
    words = [token_key(word) for word in split_text(full)]
    words = [word for word in words if word]
    if not words:
        return None
    variants = {" ".join(words)}
    given = [word for word in words if word not in _HONORIFICS]
    if given and len(given[0]) >= 2:
        variants.add(given[0])
    if given:
        variants.add(" ".join(given))
    return KnownName(full=full, variants=tuple(sorted(variants)))


def without_shared_variants(first: KnownName | None, second: KnownName | None) -> tuple[KnownName | None, ...]:
    """Two parties called "Ravi ..." cannot be told apart by "Ravi": keep only the forms that differ."""
    if first is None or second is None:
        return first, second
    shared = set(first.variants) & set(second.variants)
    if not shared:
        return first, second
    trimmed = []
    for name in (first, second):
        kept = tuple(variant for variant in name.variants if variant not in shared)
        trimmed.append(KnownName(name.full, kept) if kept else None)
    return tuple(trimmed)


def find_introductions(text: str, known: tuple[KnownName, ...]) -> list[Introduction]:
    found: list[Introduction] = []
    for pattern in _INTRODUCTIONS:
        found.extend(_introductions(pattern, text, known, require_known=False))
    for pattern in _KNOWN_NAME_INTRODUCTIONS:
        found.extend(_introductions(pattern, text, known, require_known=True))
    for pattern in _DEVANAGARI_INTRODUCTIONS:
        for match in pattern.finditer(text):
            found.append(Introduction(match.group("name"), None, match.start(), match.end()))
    for pattern in _ORGANIZATION_INTRODUCTIONS:
        found.extend(_organization_introductions(pattern, text, known))
    found.sort(key=lambda intro: intro.start)
    return found


def _introductions(
    pattern: re.Pattern[str], text: str, known: tuple[KnownName, ...], *, require_known: bool
) -> list[Introduction]:
    result: list[Introduction] = []
    for match in pattern.finditer(text):
        kept = _plausible_name(text, match.start("name"), match.group("name"), known)
        if kept is None:
            continue
        name, name_end = kept
        if text.startswith("?", name_end):
            continue  # "This is Ravi?" asks who is there
        if require_known and not any(k.matches(name) for k in known):
            continue
        organization = _organization_at(text, name_end)
        result.append(Introduction(name, organization, match.start(), max(match.end(), name_end)))
    return result


def _organization_introductions(
    pattern: re.Pattern[str], text: str, known: tuple[KnownName, ...]
) -> list[Introduction]:
    """Organisation-only introductions of a known name; the organisation stands in as the speaker's name, so
    it resolves exactly like "this is Northwind Dental" would."""
    result: list[Introduction] = []
    for match in pattern.finditer(text):
        organization = _capitalized_organization(match.group("org"))
        if organization is None or not any(k.matches(organization) for k in known):
            continue
        start = match.start("org")
        result.append(Introduction(organization, None, start, start + len(organization)))
    return result


def _plausible_name(text: str, offset: int, candidate: str, known: tuple[KnownName, ...]) -> tuple[str, int] | None:
    """The leading words of ``candidate`` that read as a name (at most two, plus an honorific) and the
    text position right after them; None if the first word is not a name."""
    words = [(offset + m.start(), m.group(0)) for m in re.finditer(r"\S+", candidate)]
    kept: list[tuple[int, str]] = []
    if len(words) > 1 and token_key(words[0][1]) in _HONORIFICS:
        kept.append(words[0])
        words = words[1:]
    name_words = 0
    for position, word in words[:_MAX_NAME_WORDS]:
        if word.endswith(("'s", "\u2019s")):
            return None  # "this is Ravi's phone" is about Ravi's things, not Ravi speaking
        key = token_key(word)
        is_known = any(key in k.variants for k in known)
        if not key or (key in _NOT_NAMES and not is_known) or not (word[0].isupper() or is_known):
            break
        kept.append((position, word))
        name_words += 1
    if not name_words:
        return None
    end = kept[-1][0] + len(kept[-1][1])
    return text[kept[0][0] : end], end


def _organization_at(text: str, position: int) -> str | None:
    match = _ORGANIZATION.match(text, position)
    return _capitalized_organization(match.group("org")) if match is not None else None


def _capitalized_organization(candidate: str) -> str | None:
    """The leading capitalized words of ``candidate`` that are not common words ("DocuSign", "Northwind
    Dental"), up to the first punctuation mark."""
    kept: list[str] = []
    for word in candidate.split():
        if not word[0].isupper() or token_key(word) in _NOT_NAMES:
            break
        kept.append(word.rstrip(",.;:!?"))
        if kept[-1] != word:
            break
    return " ".join(kept) or None


def _without_honorific(normalized: str) -> str:
    words = normalized.split()
    return " ".join(words[1:]) if len(words) > 1 and words[0] in _HONORIFICS else normalized


def greeting_pattern(name: KnownName) -> re.Pattern[str]:
    """ "Hi Praveen", "Good morning, Ravi ji" — but not "Hello, Ravi here" (a self-introduction)."""
    alternatives = "|".join(re.escape(variant).replace(r"\ ", r"\s+") for variant in name.variants)
    return re.compile(
        rf"\b{_GREETING_WORDS}[\s,!.]*(?:there[\s,]+|dear\s+)?(?:{alternatives})(?![\w])(?!{_SELF_INTRODUCTION_CUE})",
        re.IGNORECASE,
    )


def is_pickup_turn(text: str) -> bool:
    """Whether a whole utterance is what someone says on picking up: "Hello?", "Yes, speaking.", "Haan bolo",
    "Good morning, how can I help you?". Anything more ("Hi Maria, I have Tom on the line", "Hi, I am calling
    about my order") is a caller talking, or a pick-up a transcript has run together with the caller's words."""
    keys = [key for key in (token_key(word) for word in split_text(text)) if key]
    position = 0
    while position < len(keys):
        if keys[position] in _PICKUP_WORDS:
            position += 1
            continue
        phrase = next((p for p in _PICKUP_PHRASE_KEYS if tuple(keys[position : position + len(p)]) == p), None)
        if phrase is None:
            return False
        position += len(phrase)
    return bool(keys)
