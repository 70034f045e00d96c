"""Asset checks: the most recent stored artifacts of each call asset parse with the readers clients use.

They are checks of the ``call_pipeline`` multi-asset itself, so that a run materializing an asset runs its
check after the calls (a separate check op would be skipped: the multi-asset yields no outputs, its
materializations are logged per call). ``check_stored_artifacts`` runs them alone, daily.
"""

from collections.abc import Iterable, Iterator

import dagster as dg

from scryon_dagster.pipeline.outcomes import PipelineAsset
from scryon_dagster.resources import PipelineResource

CHECKED_PER_RUN = 50
CHECK_NAME = "stored_artifacts_parse"

STORED_ARTIFACTS_CHECKS = [
    dg.AssetCheckSpec(
        name=CHECK_NAME,
        asset=asset.value,
        description=f"The {CHECKED_PER_RUN} most recent {asset.artifact_type.value} objects exist and parse.",
    )
    for asset in PipelineAsset
]


def stored_artifacts_results(
    pipeline: PipelineResource, check_keys: Iterable[dg.AssetCheckKey]
) -> Iterator[dg.AssetCheckResult]:
    for check_key in sorted(check_keys, key=lambda key: key.asset_key.to_user_string()):
        report = pipeline.check_stored_artifacts(PipelineAsset(check_key.asset_key.path[-1]), limit=CHECKED_PER_RUN)
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
