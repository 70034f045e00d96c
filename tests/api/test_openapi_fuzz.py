"""A schema-driven fuzz run against the OpenAPI document (schemathesis): whatever the generated
request, valid or not, the API never answers 5xx, answers as documented, and never lets an
unauthenticated request through a protected route. Bounded and derandomized: short and repeatable.

(Cases are drawn with Hypothesis from each operation's strategy: schemathesis' lazy pytest
fixture loader does not run on pytest 9.2.)
"""

from __future__ import annotations

import io
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
from scryon_dagster.pipeline.intake import enqueue_call
from tests.api.conftest import ALICE, API_KEY, complete_call, wav_bytes

EXAMPLES_PER_OPERATION = 15
CREDENTIALS = {"Authorization": f"Bearer {API_KEY}"}
CREDENTIAL_HEADERS = {"authorization", "x-api-key"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


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


def exercise(case: Any) -> None:
    protected = is_protected(case.operation)
    strip_credentials(case)
    if protected:
        # first without any credentials: whatever else the request holds, it must be refused
        unauthenticated = case.call(headers={"X-User-Id": ALICE} if "X-User-Id" not in case.headers else None)
        assert unauthenticated.status_code == 401, f"{case.operation.label} let an unauthenticated call in"
    # X-User-Id defaults to ALICE; a generated one takes precedence
    response = case.call_and_validate(
        headers={"X-User-Id": ALICE, **case.headers, **CREDENTIALS},
        checks=[*CHECKS, ignored_auth] if protected else CHECKS,
    )
    if case.operation.path.startswith("/api/webhooks/"):
        assert response.status_code >= 400, f"{case.operation.label}: no fuzzed URL carries a valid signature"


def fuzz(strategy: SearchStrategy[Any]) -> None:
    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        exercise(case)

    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors_and_no_unauthenticated_access(app: FastAPI, mode: GenerationMode) -> None:
    every_operation = operations(app)
    assert len(every_operation) == 11

    for operation in every_operation:
        if mode is GenerationMode.NEGATIVE and not has_inputs(operation):
            continue  # nothing to make invalid
        fuzz(operation.as_strategy(generation_mode=mode))


def test_the_routes_of_an_existing_call(app: FastAPI, db: CallDatabase, store: ObjectStore) -> None:
    """The same with the path naming a real, completed call of the caller, so that success responses
    (and the probes ``ignored_auth`` sends after each) are checked too."""
    for operation in operations(app):
        if "{call_id}" in operation.path:
            call_id = completed_call(db, store)
            fuzz(operation.as_strategy(path_parameters={"call_id": str(call_id)}))


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
