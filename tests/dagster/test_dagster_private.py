"""Pinned to the Dagster version: the private API ``scryon_dagster.dagster_private`` re-exports still
exists (importing this module checks that) and behaves as the code relies on. When Dagster is upgraded
this is the test that fails first: re-check each name against the new release (or a public API that
replaced it), then move the pin."""

import inspect
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import dagster as dg
import pytest
from dagster._grpc import server as dagster_grpc_server
from dagster_postgres import PostgresEventLogStorage

from scryon_dagster import dagster_private
from scryon_dagster.dagster_private import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    CODE_VERSION_TAG,
    DAGSTER_DAEMON_MODULE,
    DATA_VERSION_TAG,
    DEFAULT_DATA_VERSION,
    NULL_EVENT_POINTER,
    compute_logical_data_version,
    get_input_data_version_tag,
    get_input_event_pointer_tag,
    log_asset_event_batch,
)
from scryon_dagster.dagster_storage import EVENT_BATCH_SIZE_VARIABLE

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def pinned_dagster_version() -> str:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    (pin,) = [match.group(1) for d in dependencies if (match := re.fullmatch(r"dagster==(\S+)", d))]
    return pin


def test_the_installed_dagster_is_the_pinned_one() -> None:
    assert dg.__version__ == pinned_dagster_version()


def test_storage_internals_the_pooled_storage_overrides_still_exist() -> None:
    # PooledPostgresEventLogStorage.store_event_batch does what store_event does, batched, with these.
    for name in ("_connect", "index_transaction", "prepare_insert_event_batch", "_store_asset_event"):
        assert callable(getattr(PostgresEventLogStorage, name, None)), name
    assert {"id", "event", "dagster_event_type"} <= set(dagster_private.SqlEventLogStorageTable.c.keys())


def test_provenance_tags_are_the_ones_dagster_writes_on_its_own_materializations() -> None:
    @dg.asset(code_version="up-v1")
    def upstream() -> int:
        return 1

    @dg.asset(code_version="down-v1")
    def downstream(upstream: int) -> int:
        return upstream + 1

    with dg.instance_for_test() as instance:
        assert dg.materialize([upstream, downstream], instance=instance).success
        (up_record,) = instance.fetch_materializations(dg.AssetKey("upstream"), limit=1).records
        (down_record,) = instance.fetch_materializations(dg.AssetKey("downstream"), limit=1).records
    assert up_record.asset_materialization is not None
    assert down_record.asset_materialization is not None
    up_version = up_record.asset_materialization.tags[DATA_VERSION_TAG]
    tags = down_record.asset_materialization.tags

    assert tags[CODE_VERSION_TAG] == "down-v1"
    assert tags[get_input_data_version_tag(dg.AssetKey("upstream"))] == up_version
    assert tags[get_input_event_pointer_tag(dg.AssetKey("upstream"))] == str(up_record.storage_id)
    expected = compute_logical_data_version("down-v1", {dg.AssetKey("upstream"): dg.DataVersion(up_version)})
    assert tags[DATA_VERSION_TAG] == expected.value
    assert isinstance(DEFAULT_DATA_VERSION, dg.DataVersion)
    assert isinstance(NULL_EVENT_POINTER, str)


def test_an_event_batch_logged_by_a_step_is_stored_as_one_batch_of_materializations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(EVENT_BATCH_SIZE_VARIABLE, "1000")
    partitions = ["call-a", "call-b", "call-c"]

    @dg.op
    def log_three(context: dg.OpExecutionContext) -> None:
        log_asset_event_batch(
            context, [dg.AssetMaterialization(asset_key="batched", partition=key) for key in partitions]
        )
        log_asset_event_batch(context, [dg.AssetObservation(asset_key="observed", partition="call-a")])

    @dg.job
    def batch_job() -> None:
        log_three()

    with dg.instance_for_test() as instance:
        storage_class = type(instance.event_log_storage)
        batches: list[list[str]] = []
        original = storage_class.store_event_batch

        def recording_store_event_batch(self: object, events: list[dg.EventLogEntry]) -> None:
            batches.append([entry.get_dagster_event().event_type_value for entry in events])
            original(self, events)  # type: ignore[arg-type]

        monkeypatch.setattr(storage_class, "store_event_batch", recording_store_event_batch)
        assert batch_job.execute_in_process(instance=instance).success
        materialized = instance.get_materialized_partitions(dg.AssetKey("batched"))
        observation = instance.fetch_observations(dg.AssetKey("observed"), limit=1).records

    assert materialized == set(partitions)
    assert len(observation) == 1
    assert observation[0].partition_key == "call-a"
    assert ["ASSET_MATERIALIZATION"] * 3 in batches


def test_partition_range_tags_make_a_run_request_ranged() -> None:
    request = dg.RunRequest(tags={ASSET_PARTITION_RANGE_START_TAG: "a", ASSET_PARTITION_RANGE_END_TAG: "c"})
    assert request.partition_key_range == dg.PartitionKeyRange("a", "c")


def test_the_code_server_starts_run_workers_with_the_context_its_init_chose() -> None:
    # fork_run_workers_from_warm_process replaces the context once __init__ has loaded the code (its
    # attributes below), and code servers are started with the entry point it replaces; the forked run
    # itself is tested through Dagster in tests/dagster/test_dagster_cli.py.
    server = dagster_grpc_server
    init = inspect.getsource(server.DagsterApiServer.__init__)
    start_run = inspect.getsource(server.DagsterApiServer.StartRun)
    assert 'self._mp_ctx = multiprocessing.get_context("spawn")' in init
    for attribute in ("self._loaded_repositories", "self._loadable_target_origin", "self._instance"):
        assert f"{attribute} =" in init or f"{attribute}: " in init, attribute
    for use in ("self._mp_ctx.Queue()", "self._mp_ctx.Event()", "self._mp_ctx.Process("):
        assert use in start_run, use
    assert "get_python_environment_entry_point(executable_path or sys.executable)" in inspect.getsource(
        server.open_server_process
    )


def test_the_daemon_command_line_runs_as_a_module() -> None:
    # what scryon_dagster.dagster_cli daemon runs, as the dagster-daemon script does
    completed = subprocess.run(
        [sys.executable, "-m", DAGSTER_DAEMON_MODULE, "--help"], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    assert "run" in completed.stdout
