"""What a newcomer meets first: the API's docs pages work offline, a completed call shows its measured
duration, and the start-up refusal without credentials says how to run locally."""

from __future__ import annotations

from uuid import UUID

import pytest

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.api import ApiConfigurationError, create_app
from tests.api.conftest import Api, api_settings, complete_call, wav_bytes
from tests.api.identity_provider import shared_identity_provider


@pytest.mark.parametrize(
    ("page", "script"), [("/api/docs", "swagger-ui-bundle.js"), ("/api/redoc", "redoc.standalone.js")]
)
def test_the_docs_pages_load_their_scripts_from_the_api_itself(api: Api, page: str, script: str) -> None:
    html = api.client.get(page)

    assert html.status_code == 200
    assert f"/api/docs-static/{script}" in html.text
    assert "cdn" not in html.text.lower()  # nothing fetched from the internet: works offline
    assert api.client.get(f"/api/docs-static/{script}").status_code == 200


def test_a_completed_call_shows_its_measured_duration(api: Api, db: CallDatabase, store: ObjectStore) -> None:
    call_id = api.queue_call(audio=wav_bytes(2.5), metadata={"durationSeconds": 240})
    complete_call(db, store, call_id)

    detail = api.request("GET", f"/api/calls/{call_id}").json()
    listed = api.request("GET", "/api/calls").json()["items"]

    assert detail["status"] == "COMPLETED"
    assert detail["durationSeconds"] == pytest.approx(2.5)
    assert [item["durationSeconds"] for item in listed if UUID(item["callId"]) == call_id] == [pytest.approx(2.5)]


def test_without_credentials_the_api_refuses_to_start_and_names_local_dev(
    pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore
) -> None:
    no_identity_provider = dict.fromkeys(shared_identity_provider().settings())
    settings = api_settings(**no_identity_provider, scryon_api_key=None)

    with pytest.raises(ApiConfigurationError, match="scryon-dagster api --local-dev"):
        create_app(settings, db=db, store=store)
