"""What the runbook's ops share: config checks that fail a run before any change, the run summary
(counts and ids, never personal data) and processing calls in batches."""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar
from uuid import UUID

import dagster as dg

from scryon_dagster.assets.calls import BatchTally, record_calls
from scryon_dagster.partitions import CALLS_PARTITIONS
from scryon_dagster.pipeline import maintenance
from scryon_dagster.pipeline.outcomes import PipelineAsset, StageSelection
from scryon_dagster.resources import PipelineResource

# Re-processing spends provider budget: live traffic goes first in the run queue.
LOW_PRIORITY = {"dagster/priority": "-10"}
MAX_LISTED_IDS = 50
_T = TypeVar("_T")


class ReprocessStage(StrEnum):
    FULL = "full"
    NORMALIZATION = "normalization"


def selection_of(stage: ReprocessStage, include_analysis: bool) -> StageSelection:
    if stage is ReprocessStage.FULL:
        assets = set(PipelineAsset)
    else:
        assets = {PipelineAsset.NORMALIZED_TRANSCRIPT, PipelineAsset.ANALYSIS}
    if not include_analysis:
        assets.discard(PipelineAsset.ANALYSIS)
    return StageSelection(frozenset(assets))


def utc_now() -> datetime:
    return datetime.now(UTC)


def write_summary(context: dg.OpExecutionContext, **values: object) -> None:
    """The run's summary on its step: counts always, ids listed up to a bound."""
    metadata: dict[str, dg.MetadataValue] = {}
    for name, value in values.items():
        if isinstance(value, list | tuple):
            metadata[f"{name}_count"] = dg.MetadataValue.int(len(value))
            metadata[name] = dg.MetadataValue.text(", ".join(str(item) for item in value[:MAX_LISTED_IDS]))
        elif isinstance(value, bool):
            metadata[name] = dg.MetadataValue.bool(value)
        elif isinstance(value, int):
            metadata[name] = dg.MetadataValue.int(value)
        elif isinstance(value, float):
            metadata[name] = dg.MetadataValue.float(round(value, 6))
        else:
            metadata[name] = dg.MetadataValue.text(str(value))
    context.add_output_metadata(metadata)
    counts = {k: v.value for k, v in metadata.items() if not isinstance(v.value, str)}
    context.log.info(f"summary: {counts}")


def uuid_of(value: str, what: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise dg.Failure(description=f"{what} {value!r} is not a UUID; nothing was changed") from None


def require_positive(value: float, what: str) -> None:
    if value <= 0:
        raise dg.Failure(description=f"{what} must be positive; nothing was changed")


def guarded(action: Callable[[], _T]) -> _T:
    """Config the maintenance layer refuses (unknown ids, bad windows) fails the run before any change."""
    try:
        return action()
    except maintenance.MaintenanceError as exc:
        raise dg.Failure(description=f"{exc}; nothing was changed") from None


def ensure_partitions(instance: dg.DagsterInstance, call_ids: Sequence[UUID]) -> None:
    """Pruned or never-added keys come back, so per-call materializations land on a partition."""
    missing = [str(c) for c in call_ids if not instance.has_dynamic_partition(CALLS_PARTITIONS, str(c))]
    if missing:
        instance.add_dynamic_partitions(CALLS_PARTITIONS, missing)


def process_in_batches(
    context: dg.OpExecutionContext,
    pipeline: PipelineResource,
    call_ids: Sequence[UUID],
    selection: StageSelection,
    batch_size: int,
) -> BatchTally:
    ensure_partitions(context.instance, call_ids)
    total = BatchTally()
    for start in range(0, len(call_ids), batch_size):
        total.add(record_calls(context, pipeline, call_ids[start : start + batch_size], selection))
    return total
