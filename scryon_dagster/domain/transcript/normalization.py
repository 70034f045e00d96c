"""Normalization: an aligned transcript becomes the clean, speaker-attributed transcript clients read.

Deterministic and without any model call. One round applies, in order:

1. non-speech tags removed ([MUSIC], (laughs), ♪ ... ♪; see ``cleanup``);
2. phone numbers masked to ``•••• 4567`` (see ``phone``; masked again after step 9);
3. pieces with no words left dropped (empty or punctuation-only segments);
4. near-duplicate segments dropped (first round only, on the provider's segments): a piece whose words
   match the previous piece's (identical, or ≥ 90 % similar with at least four words) when both are the
   same speaker or overlap in time by half or more;
5. overlaps between consecutive pieces repaired by ending the earlier piece where the later one starts
   (Whisper pads segment ends, so the later start is the better estimate);
6. fragment speakers absorbed: when at least two speakers say more than ``FRAGMENT_MAX_WORDS`` words, every
   piece of a speaker with fewer goes to the main speaker nearest in time (its attribution confidence
   becomes unknown). With fewer than two main speakers nothing is absorbed: a one-sided call keeps its
   second voice rather than losing it;
7. adjacent pieces of the same speaker at most ``MERGE_MAX_GAP_SECONDS`` apart merged into turns;
8. stutters and phrase loops collapsed within each turn (``cleanup``);
9. each turn split at sentence boundaries into bubbles of at most ``BUBBLE_MAX_CHARS`` characters
   (clauses, then words, then characters when a sentence alone is longer), contiguous in time, the
   boundaries taken from the words' own timestamps.

Rounds repeat until the bubbles no longer change, each round starting from the previous round's bubbles
as re-derived from their text (words spread over the bubble's span). ``renormalize`` feeds a stored
transcript through the very same loop (its segments are bubbles already, so without step 4), so
normalizing a normalized transcript changes nothing. Every round
only removes words, merges speakers or merges turns, so the loop converges (in practice in two rounds).
Finally speakers get ``spk_1..n`` and "Speaker 1..n" in order of first appearance, segments ``seg_0001..``.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import pairwise

from scryon_dagster.domain.transcript.aligned import AlignedTranscript, AlignedWord
from scryon_dagster.domain.transcript.bubbles import Bubble, SpeakerKey, split_turn
from scryon_dagster.domain.transcript.cleanup import collapse_repetitions, strip_non_speech
from scryon_dagster.domain.transcript.language import language_code
from scryon_dagster.domain.transcript.models import (
    LabelSource,
    NormalizedTranscript,
    PipelineInfo,
    SpeakerResolution,
    TranscriptSegment,
    TranscriptSpeaker,
    dotted_version,
)
from scryon_dagster.domain.transcript.phone import MASK, mask_phone_numbers
from scryon_dagster.domain.transcript.rendering import (
    canonical_segment_id,
    canonical_speaker_id,
    generic_label,
    with_speakers,
)
from scryon_dagster.domain.transcript.tokens import (
    Token,
    interpolate_tokens,
    split_text,
)
from scryon_dagster.domain.transcript.versions import ALIGNMENT_VERSION, NORMALIZATION_VERSION, SCHEMA_VERSION

MERGE_MAX_GAP_SECONDS = 3.0
FRAGMENT_MAX_WORDS = 4
NEAR_DUPLICATE_MIN_SIMILARITY = 0.9
NEAR_DUPLICATE_MIN_WORDS = 4
DUPLICATE_MIN_OVERLAP_SHARE = 0.5
# Convergence takes two rounds in practice; the bound only guards against a bug looping forever.
MAX_ROUNDS = 16


@dataclass(frozen=True, slots=True)
class Provenance:
    """Which providers produced the inputs; becomes the transcript's ``pipeline`` block."""

    transcription_provider: str
    transcription_model: str
    diarization_provider: str | None = None
    diarization_model: str | None = None
    status: str = "COMPLETED"


class NormalizationError(ValueError):
    """Inputs normalization cannot accept. Never quotes transcript content."""


@dataclass(slots=True)
class _Piece:
    speaker: SpeakerKey
    start: float
    end: float
    tokens: list[Token]


def normalize(
    call_id: str,
    aligned: AlignedTranscript,
    *,
    provenance: Provenance,
    created_at: datetime,
    language: str | None = None,
    duration_seconds: float | None = None,
) -> NormalizedTranscript:
    """The normalized transcript of ``aligned``; ``language``/``duration_seconds`` default to the aligned ones."""
    pieces = [
        _Piece(key, tokens[0].start, max(token.end for token in tokens), tokens)
        for segment in aligned.segments
        for key, tokens in _speaker_runs(segment.words)
    ]
    bubbles = _normalize_to_fixed_point(pieces, from_provider=True)
    order = _first_appearance(bubbles)
    speakers = [
        TranscriptSpeaker(speaker_id=canonical_speaker_id(n), source_speaker_id=key, label=generic_label(n))
        for n, key in enumerate(order, start=1)
    ]
    transcript = NormalizedTranscript(
        schema_version=SCHEMA_VERSION,
        call_id=call_id,
        language=language_code(language if language is not None else aligned.language),
        duration_seconds=duration_seconds if duration_seconds is not None else aligned.duration_seconds,
        segments=_segments(bubbles, {key: canonical_speaker_id(n) for n, key in enumerate(order, start=1)}),
        speaker_resolution=SpeakerResolution(),
        pipeline=_pipeline_info(provenance, used_diarization=aligned.used_diarization),
        created_at=_iso_utc(created_at),
    )
    return with_speakers(transcript, speakers)


def renormalize(transcript: NormalizedTranscript) -> NormalizedTranscript:
    """Run a stored transcript (any version) through the same normalization; a current one comes back equal.

    Speaker records (names, roles, label sources) are kept; generic "Speaker N" labels follow the new
    numbering when a speaker disappears (e.g. an older version kept a fragment speaker)."""
    pieces = [
        _Piece(
            segment.speaker_id,
            segment.start_seconds,
            max(segment.end_seconds, segment.start_seconds),
            interpolate_tokens(
                split_text(segment.text),
                segment.start_seconds,
                max(segment.end_seconds, segment.start_seconds),
                segment.alignment_score,
            ),
        )
        for segment in transcript.segments
    ]
    bubbles = _normalize_to_fixed_point([piece for piece in pieces if piece.tokens], from_provider=False)
    order = _first_appearance(bubbles)
    new_ids = {key: canonical_speaker_id(n) for n, key in enumerate(order, start=1)}
    speakers = [_renumbered(transcript.speaker_by_id(key or ""), n) for n, key in enumerate(order, start=1)]
    renormalized = transcript.model_copy(
        update={
            "schema_version": SCHEMA_VERSION,
            "segments": _segments(bubbles, new_ids),
            "pipeline": transcript.pipeline.model_copy(update={"normalization_version": NORMALIZATION_VERSION}),
        }
    )
    return with_speakers(renormalized, speakers)


def _renumbered(old: TranscriptSpeaker | None, position: int) -> TranscriptSpeaker:
    new_id = canonical_speaker_id(position)
    if old is None:
        return TranscriptSpeaker(speaker_id=new_id, source_speaker_id=None, label=generic_label(position))
    old_position = old.speaker_id.removeprefix("spk_")
    generic = old.label == generic_label(int(old_position)) if old_position.isdigit() else False
    label = generic_label(position) if generic or old.label_source is LabelSource.DIARIZATION else old.label
    return old.model_copy(update={"speaker_id": new_id, "label": label})


def _speaker_runs(words: Sequence[AlignedWord]) -> list[tuple[SpeakerKey, list[Token]]]:
    runs: list[tuple[SpeakerKey, list[Token]]] = []
    for word in words:
        token = Token(word.text, word.start, word.end, word.confidence)
        if runs and runs[-1][0] == word.speaker:
            runs[-1][1].append(token)
        else:
            runs.append((word.speaker, [token]))
    return runs


def _first_appearance(bubbles: list[Bubble]) -> list[SpeakerKey]:
    return list(dict.fromkeys(bubble.speaker for bubble in bubbles))


def _segments(bubbles: list[Bubble], speaker_ids: dict[SpeakerKey, str]) -> list[TranscriptSegment]:
    # Speaker fields are placeholders here: ``with_speakers`` derives them from the speaker records.
    return [
        TranscriptSegment(
            id=canonical_segment_id(n),
            speaker="",
            speaker_label="",
            speaker_id=speaker_ids[bubble.speaker],
            start_seconds=bubble.start,
            end_seconds=bubble.end,
            text=bubble.text,
            alignment_score=bubble.confidence,
        )
        for n, bubble in enumerate(bubbles, start=1)
    ]


def _pipeline_info(provenance: Provenance, *, used_diarization: bool) -> PipelineInfo:
    # Without diarization turns the speaker labels came from the transcription provider itself.
    diarization_provider = provenance.diarization_provider if used_diarization else provenance.transcription_provider
    return PipelineInfo(
        transcription_provider=provenance.transcription_provider,
        transcription_model=provenance.transcription_model,
        diarization_provider=diarization_provider,
        diarization_model=provenance.diarization_model if used_diarization else None,
        alignment_version=dotted_version(ALIGNMENT_VERSION),
        normalization_version=NORMALIZATION_VERSION,
        status=provenance.status,
    )


def _iso_utc(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise NormalizationError("created_at must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------------
# The rounds


def _normalize_to_fixed_point(pieces: list[_Piece], *, from_provider: bool) -> list[Bubble]:
    """Rounds until stable. Near-duplicate removal only runs on the provider's own segments: a bubble
    boundary is not a segment boundary, and two bubbles of one turn may legitimately read alike."""
    bubbles = _normalize_round(pieces, deduplicate=from_provider)
    for _ in range(MAX_ROUNDS):
        again = _normalize_round(_pieces_from_bubbles(bubbles), deduplicate=False)
        if again == bubbles:
            break
        bubbles = again
    return bubbles


def _pieces_from_bubbles(bubbles: list[Bubble]) -> list[_Piece]:
    return [
        _Piece(
            bubble.speaker,
            bubble.start,
            bubble.end,
            interpolate_tokens(split_text(bubble.text), bubble.start, bubble.end, bubble.confidence),
        )
        for bubble in bubbles
    ]


def _normalize_round(pieces: list[_Piece], *, deduplicate: bool) -> list[Bubble]:
    cleaned = [strip_non_speech(piece.tokens) for piece in pieces]
    masked = mask_phone_numbers(cleaned)
    speaking = [
        _Piece(piece.speaker, tokens[0].start, max(token.end for token in tokens), tokens)
        for piece, tokens in zip(pieces, masked, strict=True)
        if _has_words(tokens)
    ]
    speaking.sort(key=lambda piece: piece.start)
    deduplicated = _drop_near_duplicates(speaking) if deduplicate else speaking
    _repair_overlaps(deduplicated)
    _absorb_fragments(deduplicated)
    turns = _merge_same_speaker(deduplicated)
    turn_tokens = mask_phone_numbers([_clean_turn(turn.tokens) for turn in turns])
    return [
        bubble
        for turn, tokens in zip(turns, turn_tokens, strict=True)
        if _has_words(tokens)
        for bubble in split_turn(turn.speaker, turn.start, turn.end, tokens)
    ]


def _has_words(tokens: list[Token]) -> bool:
    return any(token.key or token.text == MASK for token in tokens)


def _word_keys(piece: _Piece) -> list[str]:
    return [token.key for token in piece.tokens if token.key]


def _drop_near_duplicates(pieces: list[_Piece]) -> list[_Piece]:
    kept: list[_Piece] = []
    for piece in pieces:
        if kept and _is_near_duplicate(kept[-1], piece):
            continue
        kept.append(piece)
    return kept


def _is_near_duplicate(earlier: _Piece, later: _Piece) -> bool:
    if earlier.speaker != later.speaker and _overlap_share(earlier, later) < DUPLICATE_MIN_OVERLAP_SHARE:
        return False
    a, b = _word_keys(earlier), _word_keys(later)
    if a == b:
        return True
    shorter, longer = sorted((len(a), len(b)))
    if shorter < NEAR_DUPLICATE_MIN_WORDS or 2 * shorter / (shorter + longer) < NEAR_DUPLICATE_MIN_SIMILARITY:
        return False
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= NEAR_DUPLICATE_MIN_SIMILARITY


def _overlap_share(a: _Piece, b: _Piece) -> float:
    overlap = min(a.end, b.end) - max(a.start, b.start)
    shorter = min(a.end - a.start, b.end - b.start)
    if overlap <= 0:
        return 0.0
    return 1.0 if shorter <= 0 else overlap / shorter


def _repair_overlaps(pieces: list[_Piece]) -> None:
    for earlier, later in pairwise(pieces):
        if later.start < earlier.end:
            earlier.end = max(earlier.start, later.start)


def _absorb_fragments(pieces: list[_Piece]) -> None:
    words = Counter[SpeakerKey]()
    for piece in pieces:
        words[piece.speaker] += len(_word_keys(piece))
    main = {speaker for speaker, count in words.items() if count > FRAGMENT_MAX_WORDS}
    if len(main) < 2 or len(main) == len(words):
        return
    is_main = [piece.speaker in main for piece in pieces]
    previous_main: list[int | None] = []
    last: int | None = None
    for index, flag in enumerate(is_main):
        previous_main.append(last)
        if flag:
            last = index
    next_main: list[int | None] = [None] * len(pieces)
    last = None
    for index in range(len(pieces) - 1, -1, -1):
        next_main[index] = last
        if is_main[index]:
            last = index
    for index, piece in enumerate(pieces):
        if is_main[index]:
            continue
        before, after = previous_main[index], next_main[index]
        gap_before = piece.start - pieces[before].end if before is not None else float("inf")
        gap_after = pieces[after].start - piece.end if after is not None else float("inf")
        target = before if gap_before <= gap_after else after
        if target is None:
            continue
        piece.speaker = pieces[target].speaker
        piece.tokens = [replace(token, confidence=None) for token in piece.tokens]


def _merge_same_speaker(pieces: list[_Piece]) -> list[_Piece]:
    turns: list[_Piece] = []
    for piece in pieces:
        if turns and turns[-1].speaker == piece.speaker and piece.start - turns[-1].end <= MERGE_MAX_GAP_SECONDS:
            turn = turns[-1]
            first = piece.tokens[0]
            turn.tokens.extend([replace(first, space_before=True), *piece.tokens[1:]])
            turn.end = max(turn.end, piece.end)
        else:
            turns.append(_Piece(piece.speaker, piece.start, piece.end, list(piece.tokens)))
    return turns


def _clean_turn(tokens: list[Token]) -> list[Token]:
    current = tokens
    while True:
        cleaned = collapse_repetitions(strip_non_speech(current))
        if cleaned is current or [token.text for token in cleaned] == [token.text for token in current]:
            return cleaned
        current = cleaned
