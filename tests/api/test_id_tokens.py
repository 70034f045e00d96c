"""ID tokens: a user is who a verified token says. Tokens come from a stand-in issuer on a loopback
port whose RSA keys the tests make; every forged or stale token is 401 ``auth_invalid``, a disabled
user 403 ``auth_disabled``, another user's call 404; rotated keys are picked up without a restart."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from fastapi.testclient import TestClient

from scryon_dagster.adapters.db.api_queries import ApiQueries
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.identity import FirebaseAccounts, IdTokenVerifier, InvalidIdToken
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.api import create_app
from scryon_dagster.settings import FIREBASE_JWKS_URL, IdentityProvider, SettingsError
from tests.api.conftest import ALICE, API_KEY, BOB, Api, api_settings, complete_call, error
from tests.api.identity_provider import FirebaseAccountsStub, IdentityProviderStub
from tests.api.test_api_keys import CALL, PROTECTED

MALLORY = "user-mallory"
KEY_SET_CACHE_SECONDS = 1.0


@pytest.fixture
def issuer() -> Iterator[IdentityProviderStub]:
    """An issuer of this test's own, so that its keys can rotate."""
    stub = IdentityProviderStub()
    yield stub
    stub.close()


@pytest.fixture
def api_for(pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore) -> Iterator[Callable[..., Api]]:
    """Clients of apps trusting an issuer, with the verifier's options (caching, Firebase accounts) as given."""
    with ExitStack() as clients:

        def build(issuer: IdentityProviderStub, **verifier_options: Any) -> Api:
            verifier = IdTokenVerifier(issuer.provider, **verifier_options)
            app = create_app(api_settings(**issuer.settings()), db=db, store=store, token_verifier=verifier)
            return Api(clients.enter_context(TestClient(app)), issuer)

        yield build


@pytest.fixture
def tokens(issuer: IdentityProviderStub, api_for: Callable[..., Api]) -> Api:
    return api_for(issuer, cache_seconds=KEY_SET_CACHE_SECONDS, refetch_cooldown_seconds=0)


def test_a_valid_token_acts_for_its_subject_found_or_created_with_email_and_name(
    tokens: Api, issuer: IdentityProviderStub, db: CallDatabase
) -> None:
    first = issuer.token(ALICE, email="alice@example.test", name="Alice")
    renamed = issuer.token(ALICE, name="Alice Doe")

    call_id = tokens.queue_call(headers={"Authorization": f"Bearer {first}"})
    listed = tokens.request("GET", "/api/calls", user=None, headers={"Authorization": f"Bearer {renamed}"})

    assert [item["callId"] for item in listed.json()["items"]] == [str(call_id)]
    alice = db.find_user(ALICE)
    assert alice is not None
    assert (alice.email, alice.display_name) == ("alice@example.test", "Alice Doe")  # no email claim: kept
    call = db.get_call(call_id)
    assert call is not None
    assert call.user_id == alice.id


def test_a_missing_token_is_401_auth_missing(tokens: Api) -> None:
    for method, path in PROTECTED:
        response = tokens.request(method, path, user=None, headers={"X-User-Id": ALICE})
        assert error(response) == (401, "auth_missing"), path
        assert response.headers["WWW-Authenticate"] == "Bearer"


FORGED_OR_STALE: dict[str, tuple[Callable[[IdentityProviderStub], str], str]] = {
    "expired": (lambda issuer: issuer.token(MALLORY, expires_in=-60), "expired"),
    "wrong audience": (lambda issuer: issuer.token(MALLORY, audience="another-api"), "audience"),
    "wrong issuer": (lambda issuer: issuer.token(MALLORY, issuer="https://elsewhere.example"), "issuer"),
    "bad signature": (lambda issuer: issuer.token(MALLORY, signing_key="unpublished"), "signature"),
    "unknown key id": (lambda issuer: issuer.token(MALLORY, kid="unpublished"), "key_id_unknown"),
    "alg none": (lambda issuer: issuer.unsigned_token(MALLORY), "algorithm"),
    "not a token": (lambda issuer: "not.a.token", "malformed"),
    "subject with spaces": (lambda issuer: issuer.token("has a space"), "subject"),
}


@pytest.mark.parametrize("kind", FORGED_OR_STALE)
def test_forged_or_stale_tokens_are_401_auth_invalid_on_every_route(
    tokens: Api, issuer: IdentityProviderStub, db: CallDatabase, kind: str
) -> None:
    issuer.add_key("unpublished")  # made by the test, never in the key set
    make_token, failed_check = FORGED_OR_STALE[kind]
    token = make_token(issuer)

    for method, path in PROTECTED:
        response = tokens.request(method, path, user=None, headers={"Authorization": f"Bearer {token}"})
        assert error(response) == (401, "auth_invalid"), path
    assert db.find_user(MALLORY) is None
    with pytest.raises(InvalidIdToken) as refused:
        IdTokenVerifier(issuer.provider).verify(token)
    assert refused.value.reason == failed_check


def test_a_token_for_alice_on_bobs_call_is_404_on_every_route(
    tokens: Api, db: CallDatabase, store: ObjectStore
) -> None:
    bobs = tokens.queue_call(user=BOB)
    complete_call(db, store, bobs)

    for method, path in PROTECTED:
        if f"/{CALL}" in path:
            response = tokens.request(method, path.replace(CALL, str(bobs)), user=ALICE)
            assert error(response) == (404, "call_not_found"), path
    polled = tokens.request("GET", "/api/calls/status", params={"ids": str(bobs)}, user=ALICE)
    listed = tokens.request("GET", "/api/calls", user=ALICE)
    deleted = tokens.request("DELETE", "/api/calls", json={"callIds": [str(bobs)]}, user=ALICE)

    assert polled.json()["items"] == []
    assert listed.json()["items"] == []
    assert deleted.json() == {"deleted": 0, "missing": 1, "failed": []}
    assert tokens.request("GET", f"/api/calls/{bobs}", user=BOB).status_code == 200  # untouched


def test_a_disabled_user_is_403_auth_disabled_whatever_the_credentials(
    issuer: IdentityProviderStub, api_for: Callable[..., Api], db: CallDatabase, store: ObjectStore
) -> None:
    tokens = api_for(issuer)
    call_id = tokens.queue_call(user=ALICE)
    db.query("UPDATE users SET disabled = true WHERE external_user_id = %s", (ALICE,))

    with TestClient(create_app(api_settings(scryon_api_trusted_service=True), db=db, store=store)) as client:
        as_service = Api(client).request("GET", f"/api/calls/{call_id}", key=API_KEY, user=ALICE)
    for method, path in PROTECTED:
        assert error(tokens.request(method, path, user=ALICE)) == (403, "auth_disabled"), path
    assert error(as_service) == (403, "auth_disabled")
    assert tokens.request("GET", "/api/calls", user=BOB).status_code == 200


def test_rotated_keys_are_picked_up_and_retired_keys_refused_without_a_restart(
    tokens: Api, issuer: IdentityProviderStub
) -> None:
    before = issuer.token(ALICE)
    assert (
        tokens.request("GET", "/api/calls", user=None, headers={"Authorization": f"Bearer {before}"}).status_code == 200
    )

    # The issuer starts signing with a new key and publishes both.
    issuer.add_key("key-2")
    issuer.publish("key-1", "key-2")
    rotated = issuer.token(ALICE, kid="key-2")
    assert (
        tokens.request("GET", "/api/calls", user=None, headers={"Authorization": f"Bearer {rotated}"}).status_code
        == 200
    )

    # Later it retires the old key: once the cached key set expires, the old key's tokens stop working.
    issuer.publish("key-2")
    time.sleep(KEY_SET_CACHE_SECONDS + 0.2)
    retired = tokens.request("GET", "/api/calls", user=None, headers={"Authorization": f"Bearer {before}"})
    assert error(retired) == (401, "auth_invalid")
    assert (
        tokens.request("GET", "/api/calls", user=None, headers={"Authorization": f"Bearer {rotated}"}).status_code
        == 200
    )


def test_unknown_key_ids_make_at_most_one_refetch_per_cooldown(
    issuer: IdentityProviderStub, api_for: Callable[..., Api]
) -> None:
    tokens = api_for(issuer)  # the production cache and cool-down
    issuer.add_key("unpublished")
    assert tokens.request("GET", "/api/calls").status_code == 200
    fetched = issuer.key_set_fetches

    for n in range(5):
        forged = issuer.token(f"{MALLORY}-{n}", kid=f"made-up-{n}", signing_key="unpublished")
        response = tokens.request("GET", "/api/calls", user=None, headers={"Authorization": f"Bearer {forged}"})
        assert error(response) == (401, "auth_invalid")

    assert issuer.key_set_fetches <= fetched + 1


def test_an_unreachable_key_set_is_503_not_401(issuer: IdentityProviderStub, api_for: Callable[..., Api]) -> None:
    tokens = api_for(issuer)
    token = issuer.token(ALICE)
    issuer.close()

    response = tokens.request("GET", "/api/calls", user=None, headers={"Authorization": f"Bearer {token}"})

    assert error(response) == (503, "service_unavailable")


def test_firebase_tokens_are_checked_against_the_projects_issuer_and_audience(issuer: IdentityProviderStub) -> None:
    firebase = api_settings(
        firebase_project_id="scryon-test", scryon_oidc_issuer=None, scryon_oidc_audience=None, scryon_oidc_jwks_url=None
    ).identity_provider
    assert firebase == IdentityProvider(
        issuer="https://securetoken.google.com/scryon-test", audience="scryon-test", jwks_url=FIREBASE_JWKS_URL
    )
    # Google's keys stand in for by the stub's: the checks are those of a Firebase project.
    verifier = IdTokenVerifier(IdentityProvider(firebase.issuer, firebase.audience, issuer.jwks_url))
    ours = issuer.token("firebase-uid-1", issuer=firebase.issuer, audience=firebase.audience, email="a@example.test")
    other_project = issuer.token("firebase-uid-1", issuer=firebase.issuer + "-prod", audience="scryon-test-prod")

    identity = verifier.verify(ours)
    assert (identity.subject, identity.email) == ("firebase-uid-1", "a@example.test")
    assert "example.test" not in repr(identity)  # personal data stays out of logs
    with pytest.raises(InvalidIdToken, match=r"^(audience|issuer)$"):
        verifier.verify(other_project)


@pytest.fixture
def firebase() -> Iterator[FirebaseAccountsStub]:
    stub = FirebaseAccountsStub()
    yield stub
    stub.close()


def test_with_a_service_account_firebase_says_who_is_disabled_or_revoked(
    issuer: IdentityProviderStub, firebase: FirebaseAccountsStub, api_for: Callable[..., Api]
) -> None:
    accounts = FirebaseAccounts(
        firebase.service_account, oauth_url=firebase.oauth_url, api_url=firebase.api_url, cache_seconds=0
    )
    tokens = api_for(issuer, accounts=accounts)
    now = time.time()
    firebase.records[ALICE] = {"disabled": False, "validSince": str(int(now) - 3600)}
    firebase.records[BOB] = {"disabled": True, "validSince": "0"}
    firebase.records[MALLORY] = {"disabled": False, "validSince": str(int(now))}  # sessions revoked just now
    revoked = issuer.token(MALLORY, issued_at=now - 60)
    signed_in_again = issuer.token(MALLORY, issued_at=now + 1)

    assert tokens.request("GET", "/api/calls", user=ALICE).status_code == 200
    assert error(tokens.request("GET", "/api/calls", user=BOB)) == (403, "auth_disabled")
    as_revoked = tokens.request("GET", "/api/calls", user=None, headers={"Authorization": f"Bearer {revoked}"})
    assert error(as_revoked) == (401, "auth_invalid")
    fresh = tokens.request("GET", "/api/calls", user=None, headers={"Authorization": f"Bearer {signed_in_again}"})
    assert fresh.status_code == 200
    assert error(tokens.request("GET", "/api/calls", user="deleted-in-firebase")) == (401, "auth_invalid")
    # one OAuth grant serves every lookup until it nears expiry
    assert (firebase.access_tokens_granted, firebase.lookups) == (1, 5)


def test_firebase_answers_are_cached_and_an_unreachable_firebase_is_503(
    issuer: IdentityProviderStub, firebase: FirebaseAccountsStub, api_for: Callable[..., Api]
) -> None:
    accounts = FirebaseAccounts(firebase.service_account, oauth_url=firebase.oauth_url, api_url=firebase.api_url)
    tokens = api_for(issuer, accounts=accounts)
    firebase.records[ALICE] = {"disabled": False, "validSince": "0"}

    for _ in range(3):
        assert tokens.request("GET", "/api/calls", user=ALICE).status_code == 200
    assert firebase.lookups == 1
    firebase.close()
    assert error(tokens.request("GET", "/api/calls", user=BOB)) == (503, "service_unavailable")


def test_a_service_account_is_read_from_the_references_variables(
    firebase: FirebaseAccountsStub, db: CallDatabase, store: ObjectStore
) -> None:
    account = firebase.service_account
    firebase_only = {"scryon_oidc_issuer": None, "scryon_oidc_audience": None, "scryon_oidc_jwks_url": None}
    one_line_key = account.private_key_pem.replace("\n", "\\n")  # as pasted into an .env file
    settings = api_settings(
        firebase_project_id=account.project_id,
        firebase_client_email=account.client_email,
        firebase_private_key=one_line_key,
        **firebase_only,
    )

    assert settings.firebase_service_account == account
    assert "PRIVATE KEY" not in repr(settings.firebase_service_account)
    assert create_app(settings, db=db, store=store).openapi()["paths"]  # starts without calling Google
    with pytest.raises(SettingsError, match="FIREBASE_PRIVATE_KEY"):
        api_settings(
            firebase_project_id="p", firebase_client_email="a@example.test", firebase_private_key="no", **firebase_only
        )


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"scryon_oidc_audience": None}, "SCRYON_OIDC_AUDIENCE"),
        ({"firebase_project_id": "scryon-test"}, "FIREBASE_PROJECT_ID"),
        ({"scryon_oidc_jwks_url": "http://keys.example/jwks.json"}, "SCRYON_OIDC_JWKS_URL"),
        ({"firebase_client_email": "scryon-api@example.test"}, "FIREBASE_PRIVATE_KEY"),
    ],
)
def test_a_bad_identity_provider_configuration_stops_start_up_naming_the_variable(
    pipeline_env: dict[str, str], overrides: dict[str, object], named: str
) -> None:
    with pytest.raises(SettingsError, match=named):
        api_settings(**overrides)


def test_the_users_row_is_read_not_rewritten_when_nothing_changed(tokens: Api, db: CallDatabase) -> None:
    tokens.request("GET", "/api/calls", user=ALICE)
    before = db.query("SELECT xmin::text AS version FROM users WHERE external_user_id = %s", (ALICE,))
    tokens.request("GET", "/api/calls", user=ALICE)
    after = db.query("SELECT xmin::text AS version FROM users WHERE external_user_id = %s", (ALICE,))

    assert before == after
    assert ApiQueries(db).sign_in(ALICE).disabled is False
