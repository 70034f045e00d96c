"""The Dagster UI's asset partitions page at 10K / 100K `calls` keys: the GraphQL queries it sends, timed
through a real `dagster-webserver` on the production instance config (PostgreSQL storage).

    .venv/bin/python bench/ui_partitions.py --keys 10000,100000 --materialized 0.2

For each key count: the keys are added in bulk, a share of them (``--materialized``) gets an
`analysis` materialization, then the webserver answers, cold (first request, which builds Dagster's
partition status cache) and warm (median of 3):

* ``partition_health``: the partition keys and their statuses, what the partitions page and the asset's
  partition bar load (``partitionKeysByDimension`` + ``assetPartitionStatuses``);
* ``partition_stats``: the counts shown in the asset overview (``partitionStats``);
* ``one_page_of_keys``: 100 keys (``partitionKeysByDimension(startIdx, endIdx)``), what a paged list needs.

Response sizes are reported too: the health answer carries every key.

Then, when a Chromium is at hand (``--browser``, default: ``chromium`` on PATH; Debian's package
``chromium``), the page itself in headless Chromium (Playwright), cold (a fresh browser on a fresh
webserver) and warm (a reload):

* ``page_ready_s``: from navigation to the page showing the key count and the status counts
  ("100,000 Partitions Selected", "Materialized (20,000)");
* ``filter_s``: typing a key into the page's name filter until the list shows that key alone;
* ``js_heap_mb``: the page's JavaScript heap once ready.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
from _harness import (
    DEFAULT_SERVER_URL,
    REPO_ROOT,
    dagster_postgres_url,
    exit_cleanly_on_sigterm,
    free_port,
    print_json,
    scratch_database,
    stop_process_group,
    write_instance_yaml,
)
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from playwright.sync_api import Page, sync_playwright

from scryon_dagster.adapters.db.migrate import upgrade_to_head
from scryon_dagster.partitions import CALLS_PARTITIONS

ASSET = "analysis"
GROW_CHUNK = 10_000
EVENT_CHUNK = 1_000
WARM_REPEATS = 3
PAGE_TIMEOUT_MS = 300_000
# True once every partition key on the page (the list shows each key's first 13 characters at least) is the probe.
ONLY_KEY_LISTED = """(key) => {
    const shown = document.body.innerText.match(/\\b[0-9a-f]{8}-[0-9a-f]{4}/g) || [];
    return shown.length > 0 && shown.every((prefix) => key.startsWith(prefix));
}"""

QUERIES = {
    "partition_health": """
        query ($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
            partitionKeysByDimension { name partitionKeys }
            assetPartitionStatuses { ... on DefaultPartitionStatuses {
                materializedPartitions failedPartitions materializingPartitions } } } } }""",
    "partition_stats": """
        query ($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
            partitionStats { numMaterialized numPartitions numFailed numMaterializing } } } }""",
    "one_page_of_keys": """
        query ($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
            partitionKeysByDimension(startIdx: 0, endIdx: 100) { name partitionKeys } } } }""",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", default="10000,100000", help="comma-separated key counts, ascending")
    parser.add_argument("--materialized", type=float, default=0.2, help="share of keys with a materialization")
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    parser.add_argument(
        "--browser",
        default=shutil.which("chromium"),
        help="Chromium executable for the page measurements (default: chromium on PATH; none: GraphQL only)",
    )
    return parser.parse_args()


def materialize(instance: dg.DagsterInstance, keys: list[str]) -> None:
    """Runless `analysis` materializations, written in batches (as the pipeline's run workers do)."""
    storage = instance.event_log_storage
    for start in range(0, len(keys), EVENT_CHUNK):
        storage.store_event_batch(
            [
                EventLogEntry(
                    error_info=None,
                    level=20,
                    user_message="",
                    run_id="",
                    timestamp=time.time(),
                    dagster_event=DagsterEvent(
                        event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
                        job_name="",
                        event_specific_data=StepMaterializationData(
                            dg.AssetMaterialization(asset_key=ASSET, partition=key)
                        ),
                    ),
                )
                for key in keys[start : start + EVENT_CHUNK]
            ]
        )


def ask(url: str, query: str) -> tuple[float, int]:
    started = time.monotonic()
    response = httpx.post(url, json={"query": query, "variables": {"key": {"path": [ASSET]}}}, timeout=600)
    elapsed = time.monotonic() - started
    response.raise_for_status()
    if "errors" in response.json():
        raise RuntimeError(f"GraphQL errors: {response.json()['errors']}")
    return elapsed, len(response.content)


def webserver(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-webserver")), "-m", "scryon_dagster.definitions", "-p", str(port)],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/server_info", timeout=2).status_code == 200:
                return process, f"{base}/graphql"
        except httpx.TransportError:
            pass
        time.sleep(1)
    stop_process_group(process)
    raise RuntimeError("dagster-webserver did not come up")


def measure_queries(url: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, query in QUERIES.items():
        cold, size = ask(url, query)
        warm = [ask(url, query)[0] for _ in range(WARM_REPEATS)]
        result[name] = {"cold_s": round(cold, 3), "warm_s": round(statistics.median(warm), 3), "bytes": size}
    return result


def count_pattern(count: int) -> str:
    """The UI writes some counts with thousands separators and some without."""
    return f"({count:,}|{count})"


def page_ready(page: Page, keys: int, materialized: int, load: Callable[[], object]) -> float:
    """Seconds from ``load()`` until the partitions page shows the key count and the status counts."""
    started = time.monotonic()
    load()
    page.get_by_text(re.compile(rf"^{count_pattern(keys)} Partitions Selected$")).wait_for(timeout=PAGE_TIMEOUT_MS)
    page.get_by_text(re.compile(rf"^Materialized \({count_pattern(materialized)}\)$")).wait_for(timeout=PAGE_TIMEOUT_MS)
    return time.monotonic() - started


def measure_page(browser_path: str, base_url: str, keys: int, materialized: int, probe_key: str) -> dict[str, Any]:
    url = f"{base_url}/assets/{ASSET}?view=partitions"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            cold = page_ready(page, keys, materialized, lambda: page.goto(url))
            warm = page_ready(page, keys, materialized, page.reload)
            devtools = page.context.new_cdp_session(page)
            devtools.send("Performance.enable")
            metrics = {m["name"]: m["value"] for m in devtools.send("Performance.getMetrics")["metrics"]}
            started = time.monotonic()
            page.get_by_placeholder("Filter by name").fill(probe_key)
            page.wait_for_function(ONLY_KEY_LISTED, arg=probe_key, timeout=PAGE_TIMEOUT_MS)
            filtered = time.monotonic() - started
        finally:
            browser.close()
    return {
        "page_ready_cold_s": round(cold, 2),
        "page_ready_warm_s": round(warm, 2),
        "filter_s": round(filtered, 2),
        "js_heap_mb": round(metrics["JSHeapUsedSize"] / 2**20),
    }


def measure(
    env: dict[str, str], browser_path: str | None, keys: int, materialized: int, probe_key: str
) -> dict[str, Any]:
    process, url = webserver(env)
    try:
        result = measure_queries(url)
        if browser_path:
            result["page"] = measure_page(browser_path, url.removesuffix("/graphql"), keys, materialized, probe_key)
        return result
    finally:
        stop_process_group(process)


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(size) for size in args.keys.split(",")]
    result: dict[str, Any] = {"arguments": vars(args), "nproc": os.cpu_count(), "sizes": {}}
    with (
        scratch_database(args.server_url, "scryon_bench_ui_calls") as calls_url,
        scratch_database(args.server_url, "scryon_bench_ui_dagster") as storage_url,
        tempfile.TemporaryDirectory(prefix="scryon-bench-ui-") as workdir,
    ):
        upgrade_to_head(calls_url)
        home = Path(workdir) / "dagster_home"
        write_instance_yaml(home)
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "DAGSTER_POSTGRES_URL": dagster_postgres_url(storage_url),
            "SCRYON_DATABASE_URL": calls_url,
        }
        os.environ.update({name: env[name] for name in ("DAGSTER_HOME", "DAGSTER_POSTGRES_URL")})
        existing = materialized = 0
        if not args.browser:
            result["page"] = "not measured: no Chromium (install Debian's chromium or pass --browser)"
        with dg.DagsterInstance.from_config(str(home)) as instance:
            for size in sizes:
                started = time.monotonic()
                while existing < size:
                    chunk = [str(uuid.uuid4()) for _ in range(min(GROW_CHUNK, size - existing))]
                    instance.add_dynamic_partitions(CALLS_PARTITIONS, chunk)
                    done = chunk[: int(len(chunk) * args.materialized)]
                    materialize(instance, done)
                    existing, materialized = existing + len(chunk), materialized + len(done)
                seeded = time.monotonic() - started
                result["sizes"][str(size)] = {
                    "seeding_s": round(seeded, 1),
                    **measure(env, args.browser, size, materialized, probe_key=chunk[-1]),
                }
    return result


def main() -> None:
    exit_cleanly_on_sigterm()
    print_json(run(parse_args()))


if __name__ == "__main__":
    main()
