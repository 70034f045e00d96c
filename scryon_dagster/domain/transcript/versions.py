"""Version stamps written into every normalized transcript.

Bump a version whenever the output of its step can change for the same input; readers accept every
older version (see ``NormalizedTranscript.parse``) and the backfill re-derives stored transcripts.
"""

from __future__ import annotations

SCHEMA_VERSION = 2
"""Shape of the normalized transcript JSON (the client contract of system.md §5)."""

NORMALIZATION_VERSION = 4
"""The reference stops at 3; this implementation's normalization steps are version 4."""

ALIGNMENT_VERSION = 2
"""Word-level max-overlap alignment with sentence-majority smoothing."""

NAMING_STRATEGY_VERSION = 4
"""The deterministic evidence ladder of system.md §6 (rules 1-9). 4: pick-ups are whole opening turns,
contested greetings, greeted parties excluded, organisation-only introductions."""
