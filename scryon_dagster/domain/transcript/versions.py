"""Version stamps written into every normalized transcript.

Bump a version whenever the output of its step can change for the same input; readers accept every
older version (see ``NormalizedTranscript.parse``) and the backfill re-derives stored transcripts.
"""

from __future__ import annotations

SCHEMA_VERSION = 2
"""Shape of the normalized transcript JSON (the client contract of system.md §5)."""

NORMALIZATION_VERSION = 7
"""The reference stops at 3; this implementation's normalization steps are version 4. 5: alignment 3.
6: alignment 4. 7: alignment 5."""

ALIGNMENT_VERSION = 5
"""Word-level max-overlap alignment with smoothing of weakly attributed words only (3: no smoothing of
unpunctuated text or of runs inside a sentence; fragment voices go back to the speaker around them. 4: in
overlapping speech, the fading voice keeps the words it is still heard in and squeezed reply words go
with the reply. 5: a reply squeezed behind the word it overlapped settles both voices across sentence and
segment ends: the squeezed words go to the voice that began last, the words written before them back to
the fading voice)."""

NAMING_STRATEGY_VERSION = 4
"""The deterministic evidence ladder of system.md §6 (rules 1-9). 4: pick-ups are whole opening turns,
contested greetings, greeted parties excluded, organisation-only introductions."""
