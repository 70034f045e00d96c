"""The Dagster UI of a running demo, driven in Debian's Chromium (Playwright, no browser download): the
asset graph, a call's four partitions materialized and FRESH, and a re-derivation launched from the UI
that succeeds and leaves the partitions FRESH.

Skipped, saying why, when no `chromium` is on PATH (`apt-get install chromium`). About a minute: one
demo (its six sample calls) serves the whole module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.domain.calls import CallStatus
from scryon_dagster.pipeline.outcomes import PipelineAsset
from tests.fixtures.postgres import create_database, drop_database

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="browser test skipped: no chromium on PATH (apt-get install chromium to run it)"
)

ASSETS = [asset.value for asset in PipelineAsset]
DEMO_SECONDS = 240
RUN_SECONDS = 120
UI_TIMEOUT_MS = 30_000
_STALE_STATUS = """
query ($asset: AssetKeyInput!, $partitions: [String!]) {
  assetNodeOrError(assetKey: $asset) { ... on AssetNode { staleStatusByPartition(partitions: $partitions) } }
}"""
_RUNS = """
query ($job: String!) { runsOrError(filter: {pipelineName: $job}) { ... on Runs { results { runId status } } } }"""


@dataclass(frozen=True)
class Demo:
    url: str
    calls: dict[str, str]
    """Sample slug → call id (the partition key)."""

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        """Ask the webserver the UI talks to."""
        response = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=30)
        response.raise_for_status()
        return response.json()["data"]

    def stale_status(self, asset: str, partitions: list[str]) -> list[str]:
        node = self.graphql(_STALE_STATUS, asset={"path": [asset]}, partitions=partitions)["assetNodeOrError"]
        return list(node["staleStatusByPartition"])


# `scryon-dagster demo`, with Ctrl-C (SIGINT) handled even when this test runs in a background job
# (whose children inherit SIGINT ignored): the teardown stops the demo the way an operator does.
_DEMO_WITH_CTRL_C = (
    "import signal, sys\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    "from scryon_dagster.cli import main\n"
    "sys.argv[0] = 'scryon-dagster'\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def demo(postgres_server_url: str) -> Iterator[Demo]:
    """`scryon-dagster demo` in a scratch directory, on its own database, until its samples completed."""
    database_url = create_database(postgres_server_url, "scryon_browser")
    workdir = Path(tempfile.mkdtemp(prefix="scryon-browser-"))
    port = _free_port()
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LEMONFOX_", "LLM_", "PYANNOTE_", "DAGSTER_", "OBJECT_STORAGE_"))
    }
    env["SCRYON_DATABASE_URL"] = database_url
    command = [sys.executable, "-c", _DEMO_WITH_CTRL_C, "demo", "--port", str(port)]
    with (workdir / "demo.log").open("w") as log:
        process = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield Demo(f"http://127.0.0.1:{port}", _wait_for_completed_samples(workdir, database_url, process))
    finally:
        os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C: the demo stops dagster dev and the SIMULATOR
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        drop_database(postgres_server_url, database_url)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_for_completed_samples(workdir: Path, database_url: str, process: subprocess.Popen[bytes]) -> dict[str, str]:
    ledger = workdir / "var" / "samples" / "enqueued.json"
    deadline = time.monotonic() + DEMO_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        if ledger.exists():
            calls: dict[str, str] = json.loads(ledger.read_text())
            with CallDatabase(database_url) as db:
                records = db.get_calls([UUID(call_id) for call_id in calls.values()])
            if len(records) == len(calls) and all(r.status is CallStatus.COMPLETED for r in records.values()):
                return calls
        time.sleep(2)
    raise AssertionError(f"the demo's samples did not complete:\n{(workdir / 'demo.log').read_text()[-3000:]}")


def _dismiss_community_dialog(page: Page, url: str) -> None:
    """Dagster's one-time "Join the Dagster community" dialog covers the first page of a fresh instance;
    skipped once, it stays away."""
    page.goto(url)
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=20_000)
    except PlaywrightTimeoutError:
        return  # not shown: nothing to dismiss
    skip.click()


@pytest.fixture(scope="module")
def page(demo: Demo) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            _dismiss_community_dialog(page, demo.url)
            yield page
        finally:
            browser.close()


def test_the_asset_graph_shows_the_four_call_assets(demo: Demo, page: Page) -> None:
    page.goto(f"{demo.url}/asset-groups/calls")
    expect(page.get_by_text("calls", exact=True).last).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.wait_for_timeout(2_000)  # the lineage lays itself out
    if not page.get_by_text("diarization", exact=True).filter(visible=True).count():
        page.get_by_text("calls", exact=True).last.dblclick()  # with other groups, each starts collapsed

    for asset in ASSETS:
        expect(page.get_by_text(asset, exact=True).filter(visible=True).first).to_be_visible(timeout=UI_TIMEOUT_MS)


def test_a_processed_call_has_its_four_partitions_materialized_and_fresh(demo: Demo, page: Page) -> None:
    call = demo.calls["three_party"]

    for asset in ASSETS:
        page.goto(f"{demo.url}/assets/{asset}?view=partitions&partition={call}")
        expect(page.get_by_text("Materialized", exact=True).first).to_be_visible(timeout=UI_TIMEOUT_MS)
        expect(page.get_by_text("Unsynced")).to_have_count(0)
        assert demo.stale_status(asset, [call]) == ["FRESH"]


def test_a_rederivation_launched_from_the_ui_succeeds_and_leaves_the_partitions_fresh(demo: Demo, page: Page) -> None:
    call = demo.calls["no_names"]
    page.goto(f"{demo.url}/jobs")
    page.get_by_role("link", name="rederive_transcripts").first.click()
    page.get_by_text(re.compile("^Materialize all")).first.click()
    expect(page.get_by_text("Launch runs to materialize 2 assets")).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.get_by_text("Select a partition or create one").click()
    page.keyboard.type(call)
    page.get_by_role("menuitem", name=call).first.click()
    page.get_by_role("button", name="Launch 1 run").click()
    expect(page.get_by_text(re.compile("^Launched run"))).to_be_visible(timeout=UI_TIMEOUT_MS)

    deadline = time.monotonic() + RUN_SECONDS
    while True:
        runs = demo.graphql(_RUNS, job="rederive_transcripts")["runsOrError"]["results"]
        if (runs and runs[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED")) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert [run["status"] for run in runs] == ["SUCCESS"]
    for asset in ("normalized_transcript", "analysis"):
        page.goto(f"{demo.url}/assets/{asset}?view=partitions&partition={call}")
        expect(page.get_by_text("rederive_transcripts").first).to_be_visible(timeout=UI_TIMEOUT_MS)
    assert {asset: demo.stale_status(asset, [call]) for asset in ASSETS} == {asset: ["FRESH"] for asset in ASSETS}
