"""Dagster resources: each builds its clients from the typed settings when a run or tick starts.

Secrets never pass through run config: they are read from the environment by ``Settings`` inside
the process that uses them, so the UI shows neither names' values nor the keys themselves.
"""

from collections.abc import Iterator, Sequence
from uuid import UUID

import dagster as dg
from pydantic import PrivateAttr

from scryon_dagster.adapters.db.embedded import resolve_database_url
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore, build_object_store
from scryon_dagster.pipeline.artifact_checks import ArtifactCheckReport, check_recent_artifacts
from scryon_dagster.pipeline.outcomes import CallOutcome, PipelineAsset, StageSelection
from scryon_dagster.pipeline.runner import CallPipeline, build_call_pipeline
from scryon_dagster.settings import Settings, load_settings


class SettingsResource(dg.ConfigurableResource):
    """The environment's typed settings, read once per run or tick."""

    _settings: Settings | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._settings = load_settings()

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings


class CallDatabaseResource(dg.ConfigurableResource):
    """The call database (SCRYON_DATABASE_URL, or the embedded default server)."""

    config: SettingsResource
    _db: CallDatabase | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        settings = self.config.settings
        self._db = CallDatabase(
            resolve_database_url(settings.scryon_database_url, settings.scryon_embedded_pg_dir),
            retry_seconds=settings.scryon_database_retry_seconds,
        ).open()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> CallDatabase:
        if self._db is None:
            raise dg.DagsterInvariantViolationError("CallDatabaseResource used outside of execution")
        return self._db


class ObjectStoreResource(dg.ConfigurableResource):
    """Artifact storage: S3-compatible or a local directory, per OBJECT_STORAGE_PROVIDER."""

    config: SettingsResource
    _store: ObjectStore | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._store = build_object_store(self.config.settings)

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            raise dg.DagsterInvariantViolationError("ObjectStoreResource used outside of execution")
        return self._store


class PipelineResource(dg.ConfigurableResource):
    """The per-call pipeline with its provider clients (one client per provider per run process)."""

    config: SettingsResource
    database: CallDatabaseResource
    storage: ObjectStoreResource
    _pipeline: CallPipeline | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._pipeline = build_call_pipeline(self.config.settings, self.database.db, self.storage.store)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None

    def run_batch(
        self,
        call_ids: Sequence[UUID],
        selection: StageSelection,
        *,
        batch_id: UUID | None,
        run_id: str,
        take_idle: bool = True,
    ) -> Iterator[CallOutcome]:
        if self._pipeline is None:
            raise dg.DagsterInvariantViolationError("PipelineResource used outside of execution")
        return self._pipeline.run_batch(call_ids, selection, batch_id=batch_id, run_id=run_id, take_idle=take_idle)

    def known_calls(self, call_ids: Sequence[UUID]) -> set[UUID]:
        """Which of the ids are calls in the call database."""
        return set(self.database.db.get_calls(call_ids))

    def check_stored_artifacts(self, asset: PipelineAsset, *, limit: int) -> ArtifactCheckReport:
        """Whether the most recent stored artifacts of the asset exist and parse."""
        return check_recent_artifacts(self.database.db, self.storage.store, asset.artifact_type, limit=limit)


def build_resources() -> dict[str, dg.ConfigurableResource]:
    config = SettingsResource()
    database = CallDatabaseResource(config=config)
    storage = ObjectStoreResource(config=config)
    return {
        "config": config,
        # the same settings for ops that take run config, whose ``config`` parameter is that run config
        "settings": config,
        "database": database,
        "storage": storage,
        "pipeline": PipelineResource(config=config, database=database, storage=storage),
    }
