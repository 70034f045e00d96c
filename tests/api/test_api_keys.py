"""The API-key guard: both header forms, several keys at once, rotation without downtime, and the
refusal to start without a key outside local-dev mode."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.api import ApiConfigurationError, create_app
from scryon_dagster.api.security import ApiKeyGuard
from tests.api.conftest import ALICE, API_KEY, OLD_API_KEY, Api, api_settings

PROTECTED = [
    ("GET", "/api/calls"),
    ("GET", "/api/calls/status?ids=0b7c5a52-1f0e-4c8e-9a51-3b1f6c1e2d77"),
    ("GET", "/api/calls/0b7c5a52-1f0e-4c8e-9a51-3b1f6c1e2d77"),
    ("GET", "/api/calls/0b7c5a52-1f0e-4c8e-9a51-3b1f6c1e2d77/transcript"),
    ("GET", "/api/calls/0b7c5a52-1f0e-4c8e-9a51-3b1f6c1e2d77/analysis"),
    ("DELETE", "/api/calls/0b7c5a52-1f0e-4c8e-9a51-3b1f6c1e2d77"),
    ("DELETE", "/api/calls"),
    ("POST", "/api/calls/0b7c5a52-1f0e-4c8e-9a51-3b1f6c1e2d77/reprocess"),
    ("POST", "/api/calls/analyze"),
]


@contextmanager
def client_for(app: FastAPI) -> Iterator[Api]:
    with TestClient(app) as client:
        yield Api(client)


@pytest.fixture
def rotating(pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore) -> Iterator[Api]:
    """The rollout window of the runbook: SCRYON_API_KEY="$NEW_KEY,$OLD_KEY"."""
    with client_for(create_app(api_settings(scryon_api_key=f"{API_KEY}, {OLD_API_KEY}"), db=db, store=store)) as api:
        yield api


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_call_route_refuses_a_missing_or_wrong_key(api: Api, method: str, path: str) -> None:
    missing = api.request(method, path, key=None)
    wrong = api.request(method, path, key="not-the-key")
    wrong_header = api.request(method, path, key=None, headers={"X-API-Key": "not-the-key"})

    assert (missing.status_code, missing.json()["code"]) == (401, "auth_missing")
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    for response in (wrong, wrong_header):
        assert (response.status_code, response.json()["code"]) == (401, "auth_invalid")


def test_a_key_is_accepted_as_bearer_token_or_x_api_key(api: Api) -> None:
    bearer = api.request("GET", "/api/calls")
    header = api.request("GET", "/api/calls", key=None, headers={"X-API-Key": API_KEY})
    conflicting = api.request("GET", "/api/calls", headers={"X-API-Key": "not-the-key"})

    assert bearer.status_code == header.status_code == 200
    assert conflicting.status_code == 401


def test_rotation_old_and_new_keys_both_work_then_the_removed_key_stops(
    rotating: Api, pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore
) -> None:
    call_id = rotating.queue_call(key=OLD_API_KEY)

    assert rotating.request("GET", f"/api/calls/{call_id}", key=API_KEY).status_code == 200
    assert rotating.request("GET", f"/api/calls/{call_id}", key=OLD_API_KEY).status_code == 200

    # Traffic on the old key is zero: it is dropped from the environment and the API restarted.
    with client_for(create_app(api_settings(scryon_api_key=API_KEY), db=db, store=store)) as after:
        assert after.request("GET", f"/api/calls/{call_id}", key=API_KEY).status_code == 200
        dropped = after.request("GET", f"/api/calls/{call_id}", key=OLD_API_KEY)
        assert (dropped.status_code, dropped.json()["code"]) == (401, "auth_invalid")


def test_health_webhooks_and_the_openapi_document_need_no_key(api: Api) -> None:
    assert api.request("GET", "/api/health", key=None, user=None).status_code == 200
    assert api.request("GET", "/api/openapi.json", key=None, user=None).status_code == 200
    # the webhook authenticates by its signed URL instead: an unsigned delivery is refused by that
    unsigned = api.request("POST", "/api/webhooks/lemonfox", key=None, user=None, json={})
    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "invalid_signature")


def test_the_api_refuses_to_start_without_a_key_outside_local_dev(
    pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore
) -> None:
    with pytest.raises(ApiConfigurationError, match="SCRYON_API_KEY"):
        create_app(api_settings(scryon_api_key=None), db=db, store=store)
    with pytest.raises(ApiConfigurationError):
        create_app(api_settings(scryon_api_key=" , "), db=db, store=store)


def test_local_dev_mode_lets_requests_in_as_the_local_dev_user(
    pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore
) -> None:
    app = create_app(api_settings(scryon_api_key=None), db=db, store=store, local_dev=True)
    with client_for(app) as api:
        call_id = api.queue_call(key=None, user=None)

        assert api.request("GET", f"/api/calls/{call_id}", key=None, user=None).status_code == 200
        assert api.request("GET", f"/api/calls/{call_id}", key=None, user=ALICE).status_code == 404
    user = db.find_user("local-dev")
    assert user is not None
    assert "security" not in app.openapi()["paths"]["/api/calls"]["get"]


def test_a_configured_key_is_enforced_even_in_local_dev_mode(
    pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore
) -> None:
    with client_for(create_app(api_settings(), db=db, store=store, local_dev=True)) as api:
        assert api.request("GET", "/api/calls", key=None).status_code == 401


def test_the_user_header_is_required_outside_local_dev(api: Api) -> None:
    response = api.request("GET", "/api/calls", user=None)

    assert (response.status_code, response.json()["code"]) == (400, "validation_failed")


def test_the_guard_accepts_exactly_the_configured_keys() -> None:
    guard = ApiKeyGuard(["alpha-key", "beta-key-that-is-longer"])

    assert guard.accepts("alpha-key")
    assert guard.accepts("beta-key-that-is-longer")
    for presented in ("alpha", "alpha-key ", "", "beta-key-that-is-longe", "ALPHA-KEY"):
        assert not guard.accepts(presented)
