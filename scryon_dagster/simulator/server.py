"""Running the simulator: in the foreground (the CLI), or in a background thread on a free port
(tests, benchmarks and the demo), plus a small client for its admin API."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from scryon_dagster.simulator.app import create_app

STARTUP_TIMEOUT_SECONDS = 15.0


class SimulatorAdmin:
    """Client of a running simulator's ``/_sim`` admin API."""

    def __init__(self, base_url: str, *, timeout_seconds: float = 10.0) -> None:
        self._client = httpx.Client(base_url=base_url, timeout=timeout_seconds)

    def health(self) -> dict[str, Any]:
        return self._get("/_sim/health")

    def set_fault(
        self,
        provider: str,
        fault: str,
        *,
        times: int = 1,
        probability: float | None = None,
        match_audio_seconds: float | None = None,
        match_call_id: str | None = None,
        retry_after_seconds: float | None = None,
        delay_seconds: float | None = None,
    ) -> None:
        """Inject ``fault`` into the next ``times`` matching requests of ``provider`` (-1: all of them),
        or with ``probability`` into that share of them (a seeded draw per request)."""
        body: dict[str, Any] = {
            "provider": provider,
            "fault": fault,
            "times": times,
            "match_audio_seconds": match_audio_seconds,
            "match_call_id": match_call_id,
        }
        optional = {
            "probability": probability,
            "retry_after_seconds": retry_after_seconds,
            "delay_seconds": delay_seconds,
        }
        body.update({name: value for name, value in optional.items() if value is not None})
        self._client.post("/_sim/faults", json=body).raise_for_status()

    def clear_faults(self, provider: str | None = None) -> None:
        params = {"provider": provider} if provider else None
        self._client.delete("/_sim/faults", params=params).raise_for_status()

    def set_rate_limit(self, provider: str, per_minute: int | None) -> None:
        """Cap ``provider`` at ``per_minute`` requests in a sliding minute; None removes the cap."""
        self._client.post("/_sim/rate_limit", json={"provider": provider, "per_minute": per_minute}).raise_for_status()

    def set_latency(self, provider: str, seconds: float) -> None:
        """Add ``seconds`` to every request of ``provider`` (0 removes it)."""
        self._client.post("/_sim/latency", json={"provider": provider, "seconds": seconds}).raise_for_status()

    def stats(self) -> dict[str, Any]:
        return self._get("/_sim/stats")

    def subject_stats(self) -> dict[str, dict[str, dict[str, int]]]:
        """Per call id (or ``audio:<seconds>``) and provider: ``requests`` and usable ``answers``."""
        subjects: dict[str, dict[str, dict[str, int]]] = self._get("/_sim/stats/subjects")["subjects"]
        return subjects

    def reset_stats(self) -> None:
        self._client.delete("/_sim/stats").raise_for_status()

    def reset(self, *, seed: int | None = None) -> None:
        """Clear faults, rate limits, extra latency and statistics; ``seed`` reseeds the fault draws."""
        body = {"seed": seed} if seed is not None else None
        self._client.post("/_sim/reset", json=body).raise_for_status()

    def close(self) -> None:
        self._client.close()

    def _get(self, path: str) -> dict[str, Any]:
        response = self._client.get(path)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


class SimulatorServer:
    """The simulator in a background thread; ``port=0`` picks a free loopback port.

    >>> with SimulatorServer() as sim:  # doctest: +SKIP
    ...     client = LemonfoxClient(api_key="test", base_url=sim.lemonfox_base_url)
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        profile: str = "fast",
        seed: int = 0,
        webhook_secret: str | None = None,
    ) -> None:
        self._host = host
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            create_app(profile=profile, seed=seed, webhook_secret=webhook_secret),
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="scryon-simulator", daemon=True
        )
        self.admin = SimulatorAdmin(self.base_url)

    @property
    def base_url(self) -> str:
        """Also the PYANNOTE_BASE_URL."""
        return f"http://{self._host}:{self.port}"

    @property
    def lemonfox_base_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def pyannote_base_url(self) -> str:
        return self.base_url

    @property
    def llm_base_url(self) -> str:
        return f"{self.base_url}/v1"

    def start(self) -> SimulatorServer:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the provider simulator did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=STARTUP_TIMEOUT_SECONDS)
        self.admin.close()
        self._socket.close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def run_simulator(
    host: str = "127.0.0.1",
    port: int = 8787,
    profile: str = "fast",
    *,
    seed: int = 0,
    webhook_secret: str | None = None,
) -> None:
    """Serve the simulator in the foreground until interrupted (the ``simulator`` CLI command)."""
    print(
        f"Scryon provider SIMULATOR on http://{host}:{port} (profile={profile}) - simulated, not real providers\n"
        f"  LEMONFOX_BASE_URL=http://{host}:{port}/v1\n"
        f"  PYANNOTE_BASE_URL=http://{host}:{port}\n"
        f"  LLM_BASE_URL=http://{host}:{port}/v1",
        flush=True,
    )
    uvicorn.run(
        create_app(profile=profile, seed=seed, webhook_secret=webhook_secret),
        host=host,
        port=port,
        log_level="info",
    )
