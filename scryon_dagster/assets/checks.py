"""Asset checks: the most recent stored artifacts of each call asset parse with the readers clients use."""

import dagster as dg

from scryon_dagster.pipeline.artifact_checks import check_recent_artifacts
from scryon_dagster.pipeline.outcomes import PipelineAsset
from scryon_dagster.resources import CallDatabaseResource, ObjectStoreResource

CHECKED_PER_RUN = 50


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            name="stored_artifacts_parse",
            asset=asset.value,
            description=f"The {CHECKED_PER_RUN} most recent {asset.artifact_type.value} objects exist and parse.",
        )
        for asset in PipelineAsset
    ],
    can_subset=True,
)
def stored_artifacts_parse(
    context: dg.AssetCheckExecutionContext, database: CallDatabaseResource, storage: ObjectStoreResource
):  # no return annotation: Dagster would read it as the check outputs
    for check_key in context.selected_asset_check_keys:
        asset = PipelineAsset(check_key.asset_key.path[-1])
        report = check_recent_artifacts(database.db, storage.store, asset.artifact_type, limit=CHECKED_PER_RUN)
        yield dg.AssetCheckResult(
            asset_key=check_key.asset_key,
            check_name=check_key.name,
            passed=report.passed,
            metadata={
                "checked": report.checked,
                "unreadable": len(report.unreadable),
                "missing": len(report.missing),
                "unreadable_call_ids": ", ".join(str(call_id) for call_id in report.unreadable[:20]),
                "missing_call_ids": ", ".join(str(call_id) for call_id in report.missing[:20]),
            },
        )
