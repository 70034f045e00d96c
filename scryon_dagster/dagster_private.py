"""The one module that imports Dagster's private API (``dagster._...``).

Each name below is something Dagster 1.13.27 (pinned in pyproject.toml) offers no public API for.
``tests/dagster/test_dagster_private.py`` pins that version and checks every name still exists and
behaves as relied on, so an upgrade fails there, in one place, instead of somewhere in the UI.

- Provenance tags: the tag names and data-version hash Dagster writes on the outputs it materializes
  itself (``execute_step._build_data_version_tags``); our per-call materializations carry the same ones.
- Batched asset events: ``OpExecutionContext.log_event`` logs one event at a time without batch
  metadata, so storage would update an asset's latest record once per event; Dagster batches the
  events of a partitioned output itself (``execute_step``), and :func:`log_asset_event_batch` does the
  same for the materializations a step logs as its calls finish.
- Partition-range run tags: ``RunRequest`` takes no partition range, only these tags.
- Storage internals for ``PooledPostgresStorage``: the event log table and the config-class data.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_TAG,
    DEFAULT_DATA_VERSION,
    NULL_EVENT_POINTER,
    compute_logical_data_version,
    get_input_data_version_tag,
    get_input_event_pointer_tag,
)
from dagster._core.events import DagsterEvent, DagsterEventBatchMetadata, generate_event_batch_id
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster._serdes import ConfigurableClassData

__all__ = [
    "ASSET_PARTITION_RANGE_END_TAG",
    "ASSET_PARTITION_RANGE_START_TAG",
    "CODE_VERSION_TAG",
    "DATA_VERSION_TAG",
    "DEFAULT_DATA_VERSION",
    "NULL_EVENT_POINTER",
    "ConfigurableClassData",
    "SqlEventLogStorageTable",
    "compute_logical_data_version",
    "get_input_data_version_tag",
    "get_input_event_pointer_tag",
    "log_asset_event_batch",
]


def log_asset_event_batch(
    context: dg.OpExecutionContext, events: Sequence[dg.AssetMaterialization | dg.AssetObservation]
) -> None:
    """Log ``events`` from a running step as one batch, as Dagster logs a partitioned output's: storage
    then updates each asset's latest record from the batch's last event instead of once per event."""
    step = context._step_execution_context
    batch_id = generate_event_batch_id()
    for index, event in enumerate(events):
        batch = DagsterEventBatchMetadata(batch_id, index == len(events) - 1)
        if isinstance(event, dg.AssetMaterialization):
            dagster_event = DagsterEvent.asset_materialization(step, event, batch)
        else:
            dagster_event = DagsterEvent.asset_observation(step, event, batch)
        # what the public log_event does, with the batch metadata it cannot pass
        context._events.append(dagster_event)
