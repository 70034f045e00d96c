"""Scale: the QUEUED sensor's tick time against a large call table, and the cost of adding partition
keys to the `calls` dynamic partitions when many keys exist already.

    .venv/bin/python bench/scale.py --rows 1000000 --queued 100000 --keys 10000,100000

1. Sensor ticks: ``--rows`` call_records (``--queued`` of them QUEUED, the rest COMPLETED) bulk-inserted
   with generate_series; then ``--ticks`` evaluations of ``queued_calls_sensor`` through
   ``dagster.build_sensor_context`` on a real instance (dagster-postgres storage), each claiming a
   batch and adding its keys. The TEMP_AUDIO objects do not exist: a tick never reads them.
2. Partitions: for SQLite and PostgreSQL instance storage, grow the key set to each size of ``--keys``
   (in bulk) and time ``add_dynamic_partitions`` of 100 new keys (median of 3), one
   ``has_dynamic_partition`` check and one ``get_dynamic_partitions`` listing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from _harness import (
    DEFAULT_SERVER_URL,
    dagster_postgres_url,
    exit_cleanly_on_sigterm,
    print_json,
    scratch_database,
    summary,
    write_instance_yaml,
)

from scryon_dagster.adapters.db.migrate import upgrade_to_head
from scryon_dagster.partitions import CALLS_PARTITIONS

ADD_BATCH = 100
GROW_CHUNK = 10_000
REPEATS = 3


def seed_call_table(database_url: str, rows: int, queued: int) -> float:
    """``rows`` calls for 1,000 users, the newest ``queued`` of them QUEUED; returns seconds taken."""
    import psycopg

    started = time.monotonic()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (external_user_id) SELECT 'bench-user-' || n FROM generate_series(1, 1000) AS n"
        )
        conn.execute(
            """
            INSERT INTO call_records (user_id, title, direction, status, attempt, created_at, updated_at)
            SELECT u.id, NULL, 'INCOMING',
                   CASE WHEN n > %(rows)s - %(queued)s THEN 'QUEUED' ELSE 'COMPLETED' END,
                   CASE WHEN n > %(rows)s - %(queued)s THEN 0 ELSE 1 END,
                   now() - make_interval(secs => %(rows)s - n), now() - make_interval(secs => %(rows)s - n)
            FROM generate_series(1, %(rows)s) AS n
            JOIN (SELECT id, row_number() OVER () - 1 AS slot FROM users) u ON u.slot = n %% 1000
            """,
            {"rows": rows, "queued": queued},
        )
        conn.execute("ANALYZE call_records")
    return time.monotonic() - started


def sensor_ticks(call_database_url: str, storage_url: str, ticks: int, batch_size: int) -> dict[str, Any]:
    from scryon_dagster.resources import CallDatabaseResource, SettingsResource
    from scryon_dagster.sensors.queued_calls import queued_calls_sensor

    os.environ["SCRYON_DATABASE_URL"] = call_database_url
    os.environ["SCRYON_SENSOR_BATCH_SIZE"] = str(batch_size)
    os.environ["DAGSTER_POSTGRES_URL"] = dagster_postgres_url(storage_url)
    durations: list[float] = []
    runs = 0
    with tempfile.TemporaryDirectory(prefix="scryon-bench-home-") as home:
        write_instance_yaml(Path(home))
        with dg.DagsterInstance.from_config(home) as instance:
            settings = SettingsResource()
            resources = {"database": CallDatabaseResource(config=settings), "config": settings}
            for _ in range(ticks):
                with dg.build_sensor_context(instance=instance, resources=resources) as context:
                    started = time.monotonic()
                    result = queued_calls_sensor(context)
                    durations.append(time.monotonic() - started)
                if isinstance(result, dg.SensorResult):
                    runs += len(result.run_requests or [])
    return {"tick_seconds": summary(durations), "first_tick_s": round(durations[0], 3), "run_requests": runs}


@contextmanager
def instance_on(storage: str, server_url: str) -> Iterator[dg.DagsterInstance]:
    """A throwaway instance on SQLite (a temp DAGSTER_HOME) or on dagster-postgres (a scratch database)."""
    with tempfile.TemporaryDirectory(prefix="scryon-bench-home-") as home:
        if storage == "sqlite":
            with dg.DagsterInstance.from_config(home) as instance:
                yield instance
            return
        with scratch_database(server_url, "scryon_bench_partitions") as url:
            os.environ["DAGSTER_POSTGRES_URL"] = dagster_postgres_url(url)
            write_instance_yaml(Path(home))
            with dg.DagsterInstance.from_config(home) as instance:
                yield instance


def timed(action: Callable[..., object], *args: object) -> float:
    started = time.monotonic()
    action(*args)
    return time.monotonic() - started


def partition_costs(storage: str, server_url: str, sizes: list[int]) -> dict[str, Any]:
    name = CALLS_PARTITIONS
    results: dict[str, Any] = {}
    with instance_on(storage, server_url) as instance:
        existing = 0
        for size in sorted(sizes):
            grow_seconds = 0.0
            while existing < size:
                chunk = [str(uuid.uuid4()) for _ in range(min(GROW_CHUNK, size - existing))]
                grow_seconds += timed(instance.add_dynamic_partitions, name, chunk)
                existing += len(chunk)
            adds = []
            for _ in range(REPEATS):
                keys = [str(uuid.uuid4()) for _ in range(ADD_BATCH)]
                adds.append(timed(instance.add_dynamic_partitions, name, keys))
                existing += ADD_BATCH
            has_seconds = timed(instance.has_dynamic_partition, name, str(uuid.uuid4()))
            results[str(size)] = {
                "grow_to_size_s": round(grow_seconds, 2),
                "add_100_keys_median_s": round(statistics.median(adds), 4),
                "has_dynamic_partition_s": round(has_seconds, 4),
                "get_dynamic_partitions_s": round(timed(instance.get_dynamic_partitions, name), 4),
            }
    return results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--ticks", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=500, help="SCRYON_SENSOR_BATCH_SIZE")
    parser.add_argument("--keys", default="10000,100000", help="existing partition key counts to measure at")
    parser.add_argument("--storages", default="sqlite,postgres")
    parser.add_argument("--skip-sensor", action="store_true")
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    return parser.parse_args()


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"arguments": vars(args), "nproc": os.cpu_count()}
    if not args.skip_sensor:
        with (
            scratch_database(args.server_url, "scryon_bench_calls") as call_url,
            scratch_database(args.server_url, "scryon_bench_dagster") as storage_url,
        ):
            upgrade_to_head(call_url)
            result["seed_seconds"] = round(seed_call_table(call_url, args.rows, args.queued), 1)
            result["sensor"] = sensor_ticks(call_url, storage_url, args.ticks, args.batch_size)
    sizes = [int(size) for size in args.keys.split(",") if size]
    result["partitions"] = {
        storage: partition_costs(storage, args.server_url, sizes) for storage in args.storages.split(",") if storage
    }
    return result


def main() -> None:
    exit_cleanly_on_sigterm()
    print_json(run(parse_args()))


if __name__ == "__main__":
    main()
