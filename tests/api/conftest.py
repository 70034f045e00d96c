"""The API on real parts: PostgreSQL, the S3-compatible server, a stand-in identity provider and
(for callbacks) the simulator.

``api`` is an in-process client of the ASGI app, whose users are who ID tokens of the stand-in issuer
say; ``ApiServer`` serves the app on a loopback port for callers outside the process (the simulator
delivering a callback).
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time
import wave
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.api import create_app
from scryon_dagster.domain.calls import ArtifactType, CallStatus
from scryon_dagster.settings import Settings, load_settings
from tests.api.identity_provider import IdentityProviderStub, shared_identity_provider

API_KEY = "api-key-current-5f0c2a9e"
OLD_API_KEY = "api-key-previous-81d7b3c4"
WEBHOOK_SECRET = "webhook-secret-current-0123456789abcdef"
OLD_WEBHOOK_SECRET = "webhook-secret-previous-0123456789abcdef"
ALICE = "user-alice"
BOB = "user-bob"


def wav_bytes(seconds: float = 1.0, sample_rate: int = 16_000) -> bytes:
    """A mono 16-bit WAV of silence."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(bytes(2 * round(seconds * sample_rate)))
    return buffer.getvalue()


def error(response: httpx.Response) -> tuple[int, str]:
    """The status and code of an error answer, after checking it is the reference's envelope:
    ``{"error": {"code", "message", "details"}}`` and nothing else."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["details"] is None or isinstance(body["error"]["details"], dict)
    return response.status_code, body["error"]["code"]


def api_settings(**overrides: object) -> Settings:
    """Settings from the test environment (``pipeline_env``): ID tokens of the shared stand-in issuer,
    a service API key and the webhook secret."""
    return load_settings(
        **{
            **shared_identity_provider().settings(),
            "scryon_api_key": API_KEY,
            "scryon_webhook_secret": WEBHOOK_SECRET,
            **overrides,
        }
    )


class Api:
    """A client of the app that acts, by default, for ALICE with her ID token. Given a ``key``, it
    calls as a service instead: the key, and ``X-User-Id`` naming ``user`` (trusted-service mode)."""

    def __init__(self, client: TestClient, issuer: IdentityProviderStub | None = None) -> None:
        self.client = client
        self.issuer = issuer or shared_identity_provider()

    def headers(self, user: str | None = ALICE, key: str | None = None, **extra: str) -> dict[str, str]:
        headers = dict(extra)
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
            if user is not None:
                headers["X-User-Id"] = user
        elif user is not None:
            headers["Authorization"] = f"Bearer {self.issuer.token(user)}"
        return headers

    def request(
        self, method: str, path: str, *, user: str | None = ALICE, key: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        extra = kwargs.pop("headers", {})
        return self.client.request(method, path, headers={**self.headers(user, key), **extra}, **kwargs)

    def upload(
        self,
        audio: bytes | None = None,
        *,
        metadata: Mapping[str, object] | str | None = None,
        filename: str = "recording.wav",
        user: str | None = ALICE,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra_parts: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        files: dict[str, Any] = {"file": (filename, audio if audio is not None else wav_bytes(), "audio/wav")}
        if metadata is not None:
            text = metadata if isinstance(metadata, str) else json.dumps(metadata)
            files["metadata"] = (None, text, "application/json")
        for name, value in (extra_parts or {}).items():
            files[name] = (None, value)
        return self.request("POST", "/api/calls/analyze", user=user, key=key, files=files, headers=dict(headers or {}))

    def queue_call(self, **kwargs: Any) -> UUID:
        response = self.upload(**kwargs)
        assert response.status_code == 202, response.text
        return UUID(response.json()["callId"])


@pytest.fixture
def settings_for_api(pipeline_env: dict[str, str]) -> Settings:
    return api_settings()


@pytest.fixture
def app(settings_for_api: Settings, db: CallDatabase, store: ObjectStore) -> FastAPI:
    return create_app(settings_for_api, db=db, store=store)


@pytest.fixture
def api(app: FastAPI) -> Iterator[Api]:
    with TestClient(app) as client:
        yield Api(client)


def complete_call(db: CallDatabase, store: ObjectStore, call_id: UUID, *, analysis: bool = True) -> dict[str, bytes]:
    """Carry a queued call to COMPLETED with stored documents, as a finished run leaves it."""
    call = db.get_call(call_id)
    assert call is not None
    db.begin_processing([call_id], batch_id=uuid4())
    documents = {ArtifactType.NORMALIZED_TRANSCRIPT_JSON: {"schemaVersion": 2, "callId": str(call_id), "segments": []}}
    if analysis:
        documents[ArtifactType.ANALYSIS_JSON] = {"schemaVersion": 3, "oneLineSummary": "A short call."}
    stored = {}
    for artifact_type, document in documents.items():
        key = f"users/{call.user_id}/calls/{call_id}/{artifact_type.value.lower()}.json"
        data = json.dumps(document).encode()
        size = store.put_bytes(key, data, "application/json")
        db.upsert_artifact(call_id, artifact_type, storage_key=key, content_type="application/json", byte_size=size)
        stored[artifact_type.value] = data
    assert db.transition(call_id, CallStatus.TRANSCRIBING, CallStatus.COMPLETED)
    return stored


class ApiServer:
    """The app on a free loopback port, in a background thread. The port is reserved first, because
    the public base URL (part of the settings the app is built from) must name it."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, app: FastAPI) -> None:
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self._socket]}, name="scryon-api", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
        self._socket.close()

    def __enter__(self) -> ApiServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
