"""Shared helpers for the provider adapter tests: audio, a webhook receiver, fast client settings."""

from __future__ import annotations

import io
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest

from scryon_dagster.adapters.http import Backoff

SIMULATOR_PLUGIN = "tests.fixtures.simulator"
FAST_BACKOFF = Backoff(initial_seconds=0.01, max_seconds=0.05)
CANARY_API_KEY = "sk-canary-7f3a9c2e5b1d"


def pytest_configure(config: pytest.Config) -> None:
    # The lead registers the fixture module through `pytest_plugins` at the root; load it here only
    # when that has not happened, so these tests also run on their own.
    if not config.pluginmanager.has_plugin(SIMULATOR_PLUGIN):
        config.pluginmanager.import_plugin(SIMULATOR_PLUGIN)


def silent_wav(seconds: float, sample_rate: int = 16_000) -> bytes:
    """A mono 16-bit WAV of the given length; the simulator only measures its duration."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(bytes(2 * round(seconds * sample_rate)))
    return buffer.getvalue()


@dataclass
class Delivery:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """A loopback HTTP endpoint that records every POST it receives."""

    url: str
    deliveries: list[Delivery] = field(default_factory=list)

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.deliveries) >= count, f"expected {count} deliveries, got {len(self.deliveries)}"
        return self.deliveries


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver: WebhookReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            parts = urlsplit(self.path)
            receiver.deliveries.append(
                Delivery(
                    parts.path, dict(parse_qsl(parts.query)), {k.lower(): v for k, v in self.headers.items()}, body
                )
            )
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = WebhookReceiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()
