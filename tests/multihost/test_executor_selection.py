"""SCRYON_BATCH_EXECUTOR picks where batch steps run; the default stays in the run worker."""

from __future__ import annotations

import pytest

from scryon_dagster.executors import batch_executor
from scryon_dagster.settings import SettingsError, load_settings

S3 = {"object_storage_provider": "s3", "object_storage_bucket": "calls"}
BROKER = "pyamqp://guest:guest@10.0.0.1:5672//"


def test_default_is_the_in_process_executor() -> None:
    assert batch_executor(load_settings()).name == "in_process"


def test_celery_is_chosen_by_setting() -> None:
    executor = batch_executor(load_settings(scryon_batch_executor="celery", scryon_celery_broker_url=BROKER, **S3))
    assert executor.name == "celery_executor"


@pytest.mark.parametrize(
    ("settings", "variable"),
    [
        ({"scryon_batch_executor": "celery", **S3}, "SCRYON_CELERY_BROKER_URL"),
        ({"scryon_batch_executor": "celery", "scryon_celery_broker_url": BROKER}, "OBJECT_STORAGE_PROVIDER=s3"),
    ],
)
def test_celery_needs_a_broker_and_shared_object_storage(settings: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings(**settings)
