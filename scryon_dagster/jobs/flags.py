"""Flip a runtime kill switch from the UI; the next batch honours it without a restart."""

import dagster as dg

from scryon_dagster.domain.flags import FeatureFlag
from scryon_dagster.resources import CallDatabaseResource


class SetFeatureFlagConfig(dg.Config):
    flag: FeatureFlag
    enabled: bool
    updated_by: str = "dagster-ui"


@dg.op(description="Writes the flag to the feature_flags table (overrides the environment default).")
def set_feature_flag_op(
    context: dg.OpExecutionContext, config: SetFeatureFlagConfig, database: CallDatabaseResource
) -> None:
    database.db.set_feature_flag(config.flag.value, config.enabled, updated_by=config.updated_by)
    context.log.info(f"{config.flag.value} set to {config.enabled}")


@dg.job(name="set_feature_flag", description="Turn PYANNOTE, voice embedding, analysis or LLM naming on or off.")
def set_feature_flag_job() -> None:
    set_feature_flag_op()
