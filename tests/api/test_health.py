"""`/api/health`: 200 with the package version when PostgreSQL and object storage answer, 503 otherwise."""

from __future__ import annotations

from importlib.metadata import version

from fastapi.testclient import TestClient

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore, S3ObjectStore
from scryon_dagster.api import create_app
from tests.api.conftest import Api, api_settings, error
from tests.fixtures.s3 import S3_TEST_ACCESS_KEY, S3_TEST_REGION, S3_TEST_SECRET_KEY


def test_healthy(api: Api) -> None:
    response = api.request("GET", "/api/health", key=None, user=None)

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "version": version("scryon_dagster"),
        "checks": {"database": "ok", "objectStorage": "ok"},
    }


def test_unreachable_database_is_503(pipeline_env: dict[str, str], store: ObjectStore) -> None:
    # nothing listens on port 1; a short pool timeout keeps the probe quick
    unreachable = CallDatabase("postgresql://nobody@127.0.0.1:1/nothing", timeout_seconds=0.5, retry_seconds=0)
    with TestClient(create_app(api_settings(), db=unreachable, store=store)) as client:
        response = client.get("/api/health")
    unreachable.close()

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"] == {"database": "unavailable", "objectStorage": "ok"}


def test_unreachable_object_storage_is_503(
    pipeline_env: dict[str, str], db: CallDatabase, s3_endpoint_url: str
) -> None:
    missing_bucket = S3ObjectStore(
        "no-such-bucket-for-health",
        endpoint_url=s3_endpoint_url,
        region=S3_TEST_REGION,
        access_key_id=S3_TEST_ACCESS_KEY,
        secret_access_key=S3_TEST_SECRET_KEY,
    )
    with TestClient(create_app(api_settings(), db=db, store=missing_bucket)) as client:
        response = client.get("/api/health")

    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "objectStorage": "unavailable"}


def test_a_call_route_answers_503_when_the_database_is_unreachable(
    pipeline_env: dict[str, str], store: ObjectStore
) -> None:
    unreachable = CallDatabase("postgresql://nobody@127.0.0.1:1/nothing", timeout_seconds=0.5, retry_seconds=0)
    with TestClient(create_app(api_settings(), db=unreachable, store=store)) as client:
        response = client.get("/api/calls", headers=Api(client).headers())
    unreachable.close()

    assert error(response) == (503, "service_unavailable")
