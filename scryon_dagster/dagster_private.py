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
- Run workers forked from a warm process: Dagster's code server starts every run worker with
  ``multiprocessing``'s *spawn* (``DagsterApiServer.__init__``), a fresh Python that imports Dagster, the
  instance's storage and the code location again (~2.8 CPU-s per run);
  :func:`fork_run_workers_from_warm_process` gives it a *forkserver* that has imported them once.
- The daemon's command line as a module (``DAGSTER_DAEMON_MODULE``: what the ``dagster-daemon`` script runs), so
  that ``scryon_dagster.dagster_cli daemon`` can run it after the change above.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import sys
from collections.abc import Sequence
from typing import Any

import dagster as dg
import dagster._grpc.server as dagster_grpc_server
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
    "DAGSTER_DAEMON_MODULE",
    "DATA_VERSION_TAG",
    "DEFAULT_DATA_VERSION",
    "NULL_EVENT_POINTER",
    "ConfigurableClassData",
    "SqlEventLogStorageTable",
    "compute_logical_data_version",
    "fork_run_workers_from_warm_process",
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


DAGSTER_DAEMON_MODULE = "dagster._daemon"


def fork_run_workers_from_warm_process(command_module: str) -> None:
    """From now on, a Dagster code server in this process, and every code server this process starts
    (``dagster dev`` starts a proxy, the proxy the server that runs the code), fork its run workers from a
    *forkserver* that has imported Dagster's run machinery, the instance's classes and the code location.

    The forkserver is a fresh interpreter started once the server has loaded the code: it imports modules
    and nothing else (no thread, no connection to inherit), and each run worker is a fork of it that then
    does what Dagster's spawned worker does: its own instance, connections and termination event, the
    server's working directory and ``sys.path`` (multiprocessing's preparation data); its environment is
    the server's as it was when the forkserver started. If the forkserver dies, the next run starts a new
    one. A code server whose code failed to load keeps Dagster's spawn. Code servers are started as
    ``python -m <command_module>`` instead of ``python -m dagster``, so that they do this too;
    ``command_module`` must run Dagster's command line after calling this function.
    """
    stock_init = dagster_grpc_server.DagsterApiServer.__init__
    stock_entry_point = dagster_grpc_server.get_python_environment_entry_point

    def init_then_fork_from_warm_process(server: Any, *args: Any, **kwargs: Any) -> None:
        stock_init(server, *args, **kwargs)
        if server._loaded_repositories is None:
            return
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_run_worker_modules(server))
        # now, not at the first run: the run's code is the code this server loaded a moment ago, and the
        # first run does not wait for the imports
        multiprocessing.forkserver.ensure_running()
        server._mp_ctx = context

    def command_module_entry_point(executable_path: str) -> Sequence[str]:
        if executable_path != sys.executable:
            return stock_entry_point(executable_path)
        return [executable_path, "-m", command_module]

    # replaced on the class: the server is constructed inside Dagster's command line
    dagster_grpc_server.DagsterApiServer.__init__ = init_then_fork_from_warm_process  # type: ignore[method-assign,assignment]
    dagster_grpc_server.get_python_environment_entry_point = command_module_entry_point


def _run_worker_modules(server: Any) -> list[str]:
    """What a run worker imports before its first step: Dagster's run entry point, the code location's
    module and the classes of the instance it loads (storage, compute logs, launcher...)."""
    target = server._loadable_target_origin
    location_names = (target.module_name, target.package_name, target.autoload_defs_module_name) if target else ()
    location_modules = [name for name in location_names if name]
    instance = server._instance
    instance_modules = (
        [data.module_name for data in instance.get_ref() if isinstance(data, ConfigurableClassData)]
        if instance is not None and instance.is_persistent
        else []
    )
    return ["dagster._grpc.impl", *instance_modules, *location_modules]
