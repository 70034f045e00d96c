"""Real parts for the pipeline: PostgreSQL, the S3-compatible server, ffmpeg and the provider simulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID

import pytest

from scryon_dagster.adapters.db.records import NewCall
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore, build_object_store
from scryon_dagster.pipeline.intake import enqueue_call
from scryon_dagster.pipeline.runner import CallPipeline, build_call_pipeline
from scryon_dagster.settings import Settings, load_settings
from scryon_dagster.simulator import SimulatorServer
from scryon_dagster.simulator.samples import SAMPLE_CALLS, SampleCall, generate_sample_audio

SIMULATOR_KEY = "sk-simulator-canary-key-0000"


@pytest.fixture(scope="session")
def sample_audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {sample.sample.slug: sample.path for sample in generate_sample_audio(tmp_path_factory.mktemp("samples"))}


def pipeline_environment(
    simulator: SimulatorServer, database_url: str, s3_endpoint_url: str, bucket: str
) -> dict[str, str]:
    """The environment a run worker would have, pointed at the real local parts."""
    return {
        "SCRYON_DATABASE_URL": database_url,
        "LEMONFOX_BASE_URL": simulator.lemonfox_base_url,
        "LEMONFOX_API_KEY": SIMULATOR_KEY,
        "LEMONFOX_MAX_RETRIES": "1",
        "PYANNOTE_BASE_URL": simulator.pyannote_base_url,
        "PYANNOTE_API_KEY": SIMULATOR_KEY,
        "PYANNOTE_ENABLED": "true",
        "SCRYON_DIARIZATION_POLL_INTERVAL_SECONDS": "0.05",
        "SCRYON_DIARIZATION_TIMEOUT_SECONDS": "20",
        "LLM_BASE_URL": simulator.llm_base_url,
        "LLM_API_KEY": SIMULATOR_KEY,
        "LLM_MAX_RETRIES": "1",
        "OBJECT_STORAGE_PROVIDER": "s3",
        "OBJECT_STORAGE_BUCKET": bucket,
        "OBJECT_STORAGE_ENDPOINT": s3_endpoint_url,
        "OBJECT_STORAGE_REGION": "us-east-1",
        "OBJECT_STORAGE_ACCESS_KEY": "testing",
        "OBJECT_STORAGE_SECRET_KEY": "testing",
    }


@pytest.fixture
def pipeline_env(
    monkeypatch: pytest.MonkeyPatch,
    simulator: SimulatorServer,
    database_url: str,
    s3_endpoint_url: str,
    s3_bucket: str,
) -> dict[str, str]:
    environment = pipeline_environment(simulator, database_url, s3_endpoint_url, s3_bucket)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return environment


@pytest.fixture
def settings(pipeline_env: dict[str, str]) -> Settings:
    return load_settings()


@pytest.fixture
def store(settings: Settings) -> ObjectStore:
    return build_object_store(settings)


@pytest.fixture
def pipeline(settings: Settings, db: CallDatabase, store: ObjectStore) -> Iterator[CallPipeline]:
    built = build_call_pipeline(settings, db, store)
    yield built
    built.close()


Enqueue = Callable[..., UUID]


@pytest.fixture
def enqueue_sample(db: CallDatabase, store: ObjectStore, sample_audio: dict[str, Path]) -> Enqueue:
    """Queue a sample call as the intake would; returns its call id."""

    def enqueue(slug: str = "greeting_by_name", **overrides: object) -> UUID:
        sample = sample_by_slug(slug)
        with sample_audio[slug].open("rb") as audio:
            record = enqueue_call(
                db,
                store,
                audio=audio,
                filename=sample_audio[slug].name,
                user_reference=f"user-{slug}",
                user_display_name=sample.user_display_name,
                call=NewCall(
                    **{
                        "title": sample.title,
                        "direction": sample.direction,
                        "contact_name": sample.contact_name,
                        "phone_number": sample.phone_number,
                        **overrides,
                    }  # type: ignore[arg-type]
                ),
                max_bytes=50 * 1024 * 1024,
            )
        return record.id

    return enqueue


def sample_by_slug(slug: str) -> SampleCall:
    return next(sample for sample in SAMPLE_CALLS if sample.slug == slug)
