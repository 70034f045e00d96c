"""The argument checks every maintenance function runs before changing anything."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import TypeVar

from scryon_dagster.pipeline.outcomes import StageSelection

_T = TypeVar("_T")


class MaintenanceError(ValueError):
    """Arguments a maintenance function refuses (unknown id, bad window, nothing to reprocess from).

    Raised before any change. ``code`` is short and stable (``audio_missing`` for a full reprocess
    whose TEMP_AUDIO is gone); the message carries ids only.
    """

    def __init__(self, message: str, *, code: str = "invalid_argument") -> None:
        super().__init__(message)
        self.code = code


def require_aware(**moments: datetime) -> None:
    for name, moment in moments.items():
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise MaintenanceError(f"{name} must be timezone-aware")


def require_positive(**windows: timedelta) -> None:
    for name, window in windows.items():
        if window <= timedelta(0):
            raise MaintenanceError(f"{name} must be a positive duration", code="invalid_window")


def require_selection(selection: StageSelection) -> None:
    if not selection.assets:
        raise MaintenanceError("the stage selection is empty")


def chunks(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    chunk: list[_T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
