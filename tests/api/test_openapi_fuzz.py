"""A schema-driven fuzz run against the OpenAPI document (schemathesis): whatever the generated
request, valid or not, the API never answers 5xx, answers as documented, and never lets an
unauthenticated request through a protected route. It runs as a user with her ID token, and as a
trusted service naming her in ``X-User-Id``. Bounded and derandomized: short and repeatable.

(Cases are drawn with Hypothesis from each operation's strategy: schemathesis' lazy pytest
fixture loader does not run on pytest 9.2.)
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.strategies import SearchStrategy
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from scryon_dagster.adapters.db.records import NewCall
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.api import create_app
from scryon_dagster.pipeline.intake import enqueue_call
from tests.api.conftest import ALICE, API_KEY, api_settings, complete_call, wav_bytes
from tests.api.identity_provider import shared_identity_provider

EXAMPLES_PER_OPERATION = 15
CREDENTIAL_HEADERS = {"authorization", "x-api-key", "x-scryon-api-key"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass(frozen=True)
class Caller:
    """How the fuzzed requests authenticate as ALICE, and credentials that must get nowhere."""

    credentials: Callable[[], dict[str, str]]
    refused: Callable[[], list[dict[str, str]]]
    settings: dict[str, object] = field(default_factory=dict)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


CALLERS = {
    "id_token": Caller(
        credentials=lambda: _bearer(shared_identity_provider().token(ALICE)),
        refused=lambda: [
            {},
            # with tokens configured, a service key never selects a user
            {"X-API-Key": API_KEY, "X-User-Id": ALICE},
            {"X-Scryon-Api-Key": API_KEY, "X-User-Id": ALICE},
            _bearer(shared_identity_provider().token(ALICE, expires_in=-3600)),
        ],
    ),
    "trusted_service": Caller(
        credentials=lambda: _bearer(API_KEY),
        refused=lambda: [{}, {"X-API-Key": "not-the-key"}, {"X-Scryon-Api-Key": "not-the-key"}],
        settings={"scryon_api_trusted_service": True},
    ),
}


@pytest.fixture(params=sorted(CALLERS))
def caller(request: pytest.FixtureRequest) -> Caller:
    return CALLERS[request.param]


@pytest.fixture
def fuzzed_app(caller: Caller, pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore) -> FastAPI:
    return create_app(api_settings(**caller.settings), db=db, store=store)


def operations(app: FastAPI) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    results = list(schema.get_all_operations())
    valid = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(valid) == len(results), "the OpenAPI document has invalid operations"
    return valid


def is_protected(operation: Any) -> bool:
    return bool(operation.definition.raw.get("security"))


def has_inputs(operation: Any) -> bool:
    definition = operation.definition.raw
    return bool(definition.get("parameters") or definition.get("requestBody"))


def strip_credentials(case: Any) -> None:
    """Drop the credentials schemathesis generated from the security schemes (random, so invalid)."""
    headers = case.headers or {}
    case.headers = {name: value for name, value in headers.items() if name.lower() not in CREDENTIAL_HEADERS}


def exercise(case: Any, caller: Caller) -> None:
    protected = is_protected(case.operation)
    strip_credentials(case)
    if protected:
        # first without valid credentials: whatever else the request holds, it must be refused
        for refused in caller.refused():
            headers = {"X-User-Id": ALICE, **case.headers, **refused}
            unauthenticated = case.call(headers=headers)
            assert unauthenticated.status_code == 401, f"{case.operation.label} let an unauthenticated call in"
    # X-User-Id defaults to ALICE (read in trusted-service mode only); a generated one takes precedence
    response = case.call_and_validate(
        headers={"X-User-Id": ALICE, **case.headers, **caller.credentials()},
        checks=[*CHECKS, ignored_auth] if protected else CHECKS,
    )
    if case.operation.path.startswith("/api/webhooks/"):
        assert response.status_code >= 400, f"{case.operation.label}: no fuzzed URL carries a valid signature"


def fuzz(strategy: SearchStrategy[Any], caller: Caller) -> None:
    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        exercise(case, caller)

    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors_and_no_unauthenticated_access(
    fuzzed_app: FastAPI, caller: Caller, mode: GenerationMode
) -> None:
    every_operation = operations(fuzzed_app)
    assert len(every_operation) == 15

    for operation in every_operation:
        if mode is GenerationMode.NEGATIVE and not has_inputs(operation):
            continue  # nothing to make invalid
        fuzz(operation.as_strategy(generation_mode=mode), caller)


def test_the_routes_of_an_existing_call(
    fuzzed_app: FastAPI, caller: Caller, db: CallDatabase, store: ObjectStore
) -> None:
    """The same with the path naming a real, completed call of the caller, so that success responses
    (and the probes ``ignored_auth`` sends after each) are checked too."""
    for operation in operations(fuzzed_app):
        if "{call_id}" in operation.path:
            call_id = completed_call(db, store)
            fuzz(operation.as_strategy(path_parameters={"call_id": str(call_id)}), caller)


def completed_call(db: CallDatabase, store: ObjectStore) -> UUID:
    audio = wav_bytes(0.5)
    call = enqueue_call(
        db,
        store,
        audio=io.BytesIO(audio),
        filename="call.wav",
        user_reference=ALICE,
        call=NewCall(),
        max_bytes=len(audio),
    )
    complete_call(db, store, call.id)
    return call.id
