"""Acceptance of a raw analysis completion: a validated ``Analysis`` or ``AnalysisInvalidOutput``.

Refusal, truncation (``finish_reason=length``), a content filter stop, empty content, invalid JSON, any
deviation from the strict contract and citations of segments the transcript does not have are all the
same outcome for the call: ``analysis_invalid_output``. The exception carries a stable reason code and
content-free field paths only; it never chains the underlying error (which quotes model output).
"""

from __future__ import annotations

from scryon_dagster.domain.analysis.contract import StrictOutputError, StrictOutputFailure, decode_strict_output
from scryon_dagster.domain.analysis.models import Analysis, iter_citations
from scryon_dagster.domain.calls import ErrorCode
from scryon_dagster.domain.transcript.models import NormalizedTranscript

_MAX_PATHS = 10


class AnalysisInvalidOutput(Exception):
    """The LLM answered, but not with a usable analysis. ``str()`` is safe for logs and event rows."""

    code = ErrorCode.ANALYSIS_INVALID_OUTPUT

    def __init__(self, reason: StrictOutputFailure, violations: tuple[str, ...] = ()) -> None:
        self.reason = reason
        self.violations = violations
        detail = f" at {', '.join(violations)}" if violations else ""
        super().__init__(f"{self.code.value}: {reason.value}{detail}")


def validate_analysis_output(
    *, content: str | None, refusal: str | None, finish_reason: str | None, transcript: NormalizedTranscript
) -> Analysis:
    """Accept the completion of an analysis request, or raise ``AnalysisInvalidOutput``."""
    try:
        analysis = decode_strict_output(Analysis, content=content, refusal=refusal, finish_reason=finish_reason)
    except StrictOutputError as exc:
        raise AnalysisInvalidOutput(exc.reason, exc.violations) from None
    known = {segment.id for segment in transcript.segments}
    # Paths, not ids: an invented "id" is model text and stays out of the message.
    offending = sorted({path for path, segment_id in iter_citations(analysis) if segment_id not in known})
    if offending:
        raise AnalysisInvalidOutput(StrictOutputFailure.UNKNOWN_SEGMENT_IDS, tuple(offending[:_MAX_PATHS]))
    return analysis
