"""API keys, the credentials of service callers: every header form (the bearer token, ``X-API-Key`` and
the reference's ``X-Scryon-Api-Key``), several keys at once, rotation
without downtime. A key names a user only in trusted-service mode (``X-User-Id``); the API refuses
to start when no caller could name a user; local-dev mode acts for one fixed user."""

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
from scryon_dagster.settings import SettingsError
from tests.api.conftest import ALICE, API_KEY, BOB, OLD_API_KEY, Api, api_settings, error

CALL = "0b7c5a52-1f0e-4c8e-9a51-3b1f6c1e2d77"
PROTECTED = [
    ("GET", "/api/calls"),
    ("GET", f"/api/calls/status?ids={CALL}"),
    ("GET", f"/api/calls/{CALL}"),
    ("GET", f"/api/calls/{CALL}/transcript"),
    ("GET", f"/api/calls/{CALL}/analysis"),
    ("DELETE", f"/api/calls/{CALL}"),
    ("DELETE", "/api/calls"),
    ("POST", f"/api/calls/{CALL}/reprocess"),
    ("POST", f"/api/calls/{CALL}/reanalyze"),
    ("POST", "/api/calls/analyze"),
    ("POST", "/api/users/me/voice-profile"),
    ("GET", "/api/users/me/voice-profile/status"),
    ("DELETE", "/api/users/me/voice-profile"),
]
KEY_HEADERS = ("X-API-Key", "X-Scryon-Api-Key")
NO_IDENTITY_PROVIDER = {"scryon_oidc_issuer": None, "scryon_oidc_audience": None, "scryon_oidc_jwks_url": None}


@contextmanager
def client_for(app: FastAPI) -> Iterator[Api]:
    with TestClient(app) as client:
        yield Api(client)


@pytest.fixture
def service(pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore) -> Iterator[Api]:
    """Trusted-service mode, in the rollout window of the runbook: SCRYON_API_KEY="$NEW_KEY,$OLD_KEY"."""
    settings = api_settings(scryon_api_trusted_service=True, scryon_api_key=f"{API_KEY}, {OLD_API_KEY}")
    with client_for(create_app(settings, db=db, store=store)) as api:
        yield api


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_call_route_refuses_a_missing_or_wrong_key(service: Api, method: str, path: str) -> None:
    missing = service.request(method, path, user=None, headers={"X-User-Id": ALICE})
    wrong = service.request(method, path, key="not-the-key")
    wrong_headers = [
        service.request(method, path, user=None, headers={header: "not-the-key", "X-User-Id": ALICE})
        for header in KEY_HEADERS
    ]

    assert error(missing) == (401, "auth_missing")
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    for response in (wrong, *wrong_headers):
        assert error(response) == (401, "auth_invalid")


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_outside_trusted_service_mode_a_key_names_no_user(api: Api, method: str, path: str) -> None:
    as_bearer = api.request(method, path, key=API_KEY, user=ALICE)
    as_headers = [
        api.request(method, path, user=None, headers={header: API_KEY, "X-User-Id": ALICE}) for header in KEY_HEADERS
    ]

    for response in (as_bearer, *as_headers):
        assert error(response) == (401, "auth_missing")


def test_a_key_is_accepted_as_bearer_token_or_in_either_key_header(service: Api) -> None:
    bearer = service.request("GET", "/api/calls", key=API_KEY)
    headers = [
        service.request("GET", "/api/calls", user=None, headers={header: API_KEY, "X-User-Id": ALICE})
        for header in KEY_HEADERS
    ]
    both = service.request(
        "GET",
        "/api/calls",
        user=None,
        headers={"X-API-Key": API_KEY, "X-Scryon-Api-Key": OLD_API_KEY, "X-User-Id": ALICE},
    )
    conflicting = [
        service.request("GET", "/api/calls", key=API_KEY, headers={header: "not-the-key"}) for header in KEY_HEADERS
    ]
    one_wrong = service.request(
        "GET", "/api/calls", user=None, headers={"X-API-Key": API_KEY, "X-Scryon-Api-Key": "nope", "X-User-Id": ALICE}
    )

    assert [response.status_code for response in (bearer, *headers, both)] == [200] * 4
    for response in (*conflicting, one_wrong):
        assert error(response) == (401, "auth_invalid")


def test_trusted_service_mode_acts_for_the_named_user_only(service: Api) -> None:
    call_id = service.queue_call(key=API_KEY, user=ALICE)

    assert service.request("GET", f"/api/calls/{call_id}", key=API_KEY, user=ALICE).status_code == 200
    as_bob = service.request("GET", f"/api/calls/{call_id}", key=API_KEY, user=BOB)
    assert error(as_bob) == (404, "call_not_found")
    # ID tokens keep working beside the keys, and a token's user is its own whatever X-User-Id says
    assert service.request("GET", f"/api/calls/{call_id}", user=ALICE).status_code == 200
    as_bob_naming_alice = service.request("GET", f"/api/calls/{call_id}", user=BOB, headers={"X-User-Id": ALICE})
    assert as_bob_naming_alice.status_code == 404


def test_trusted_service_mode_needs_a_well_formed_user_header_after_the_key(service: Api) -> None:
    unnamed = service.request("GET", "/api/calls", key=API_KEY, user=None)
    malformed = service.request("GET", "/api/calls", key=API_KEY, user="has a space")
    malformed_without_key = service.request("GET", "/api/calls", user=None, headers={"X-User-Id": "has a space"})

    for response in (unnamed, malformed):
        assert error(response) == (400, "validation_failed")
    assert error(malformed_without_key) == (401, "auth_missing")


def test_rotation_old_and_new_keys_both_work_then_the_removed_key_stops(
    service: Api, pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore
) -> None:
    call_id = service.queue_call(key=OLD_API_KEY)

    assert service.request("GET", f"/api/calls/{call_id}", key=API_KEY).status_code == 200
    assert service.request("GET", f"/api/calls/{call_id}", key=OLD_API_KEY).status_code == 200

    # Traffic on the old key is zero: it is dropped from the environment and the API restarted.
    settings = api_settings(scryon_api_trusted_service=True, scryon_api_key=API_KEY)
    with client_for(create_app(settings, db=db, store=store)) as after:
        assert after.request("GET", f"/api/calls/{call_id}", key=API_KEY).status_code == 200
        dropped = after.request("GET", f"/api/calls/{call_id}", key=OLD_API_KEY)
        assert error(dropped) == (401, "auth_invalid")


def test_health_webhooks_and_the_openapi_document_need_no_credentials(api: Api) -> None:
    assert api.request("GET", "/api/health", user=None).status_code == 200
    assert api.request("GET", "/api/openapi.json", user=None).status_code == 200
    # the webhook authenticates by its signed URL instead: an unsigned delivery is refused by that
    unsigned = api.request("POST", "/api/webhooks/lemonfox", user=None, json={})
    assert error(unsigned) == (401, "invalid_signature")


def test_the_openapi_document_lists_the_credentials_each_mode_reads(service: Api, api: Api) -> None:
    def call_route(client: Api) -> dict[str, object]:
        operation: dict[str, object] = client.request("GET", "/api/openapi.json").json()["paths"]["/api/calls"]["get"]
        return operation

    tokens, trusted = call_route(api), call_route(service)
    assert (
        tokens["security"]
        == trusted["security"]
        == [
            {"BearerAuth": []},
            {"ApiKeyAuth": []},
            {"ScryonApiKeyAuth": []},
        ]
    )
    assert "x-user-id" not in str(tokens.get("parameters")).lower()
    (user_header,) = [p for p in trusted["parameters"] if p["name"] == "x-user-id"]  # type: ignore[attr-defined]
    assert user_header["schema"]["pattern"] == r"^[\x21-\x7e]{1,128}$"


def test_the_api_refuses_to_start_when_no_caller_could_name_a_user(
    pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore
) -> None:
    with pytest.raises(ApiConfigurationError, match="FIREBASE_PROJECT_ID"):
        create_app(api_settings(scryon_api_key=None, **NO_IDENTITY_PROVIDER), db=db, store=store)
    with pytest.raises(ApiConfigurationError, match="FIREBASE_PROJECT_ID"):
        create_app(api_settings(scryon_api_key=" , ", **NO_IDENTITY_PROVIDER), db=db, store=store)
    with pytest.raises(ApiConfigurationError, match="SCRYON_API_TRUSTED_SERVICE"):
        create_app(api_settings(**NO_IDENTITY_PROVIDER), db=db, store=store)
    with pytest.raises(SettingsError, match="SCRYON_API_KEY"):
        api_settings(scryon_api_key=None, scryon_api_trusted_service=True)


def test_local_dev_mode_acts_for_the_fixed_local_dev_user(
    pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore
) -> None:
    app = create_app(api_settings(scryon_api_key=None, **NO_IDENTITY_PROVIDER), db=db, store=store, local_dev=True)
    with client_for(app) as api:
        call_id = api.queue_call(user=None)

        assert api.request("GET", f"/api/calls/{call_id}", user=None).status_code == 200
        # a header naming someone else changes nothing: the shortcut's user is fixed
        assert api.request("GET", f"/api/calls/{call_id}", user=None, headers={"X-User-Id": ALICE}).status_code == 200
    assert db.find_user("local-dev") is not None
    assert db.find_user(ALICE) is None
    assert "security" not in app.openapi()["paths"]["/api/calls"]["get"]


def test_local_dev_mode_is_ignored_once_an_identity_provider_is_configured(
    pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore
) -> None:
    with client_for(create_app(api_settings(scryon_api_key=None), db=db, store=store, local_dev=True)) as api:
        anonymous = api.request("GET", "/api/calls", user=None)
        assert error(anonymous) == (401, "auth_missing")
        assert api.request("GET", "/api/calls").status_code == 200  # ALICE's token
    assert db.find_user("local-dev") is None


def test_a_configured_key_is_enforced_even_in_local_dev_mode(
    pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore
) -> None:
    with client_for(create_app(api_settings(**NO_IDENTITY_PROVIDER), db=db, store=store, local_dev=True)) as api:
        assert api.request("GET", "/api/calls", user=None).status_code == 401
        assert api.request("GET", "/api/calls", key=API_KEY, user=None).status_code == 200


def test_the_guard_accepts_exactly_the_configured_keys() -> None:
    guard = ApiKeyGuard(["alpha-key", "beta-key-that-is-longer"])

    assert guard.accepts("alpha-key")
    assert guard.accepts("beta-key-that-is-longer")
    for presented in ("alpha", "alpha-key ", "", "beta-key-that-is-longe", "ALPHA-KEY"):
        assert not guard.accepts(presented)
