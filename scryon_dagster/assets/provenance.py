"""Data provenance of a call's materializations, tagged as Dagster tags its own asset outputs.

Our materializations are logged per (asset, call) rather than yielded as outputs, so Dagster does not
tag them itself. Without its tags the UI's staleness is meaningless (every partition "has a new
dependency"); with them a partition is stale exactly when its code version changed or an upstream
partition it was computed from has a newer data version. The tag names and the data-version hash are
Dagster's own (``execute_step._build_data_version_tags``), which is why this module reads them from
``scryon_dagster.dagster_private``: no public API builds them.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import dagster as dg

from scryon_dagster.dagster_private import (
    CODE_VERSION_TAG,
    DATA_VERSION_TAG,
    DEFAULT_DATA_VERSION,
    NULL_EVENT_POINTER,
    compute_logical_data_version,
    get_input_data_version_tag,
    get_input_event_pointer_tag,
)
from scryon_dagster.pipeline.outcomes import PipelineAsset


@dataclass(frozen=True)
class UpstreamVersion:
    """The latest materialization of one upstream partition: what a downstream one was computed from."""

    data_version: dg.DataVersion
    storage_id: int | None


def latest_versions(
    instance: dg.DagsterInstance, asset: PipelineAsset, partitions: Sequence[str]
) -> dict[str, UpstreamVersion]:
    """The data version and storage id of each partition's latest materialization, in two queries;
    a partition never materialized reads as Dagster's default version with no event pointer."""
    key = dg.AssetKey(asset.value)
    storage = instance.event_log_storage
    materialization = dg.DagsterEventType.ASSET_MATERIALIZATION
    storage_ids = storage.get_latest_storage_id_by_partition(key, materialization, set(partitions))
    tags = storage.get_latest_tags_by_partition(key, materialization, [DATA_VERSION_TAG], list(partitions))
    return {
        partition: UpstreamVersion(
            dg.DataVersion(version)
            if (version := tags.get(partition, {}).get(DATA_VERSION_TAG))
            else DEFAULT_DATA_VERSION,
            storage_ids.get(partition),
        )
        for partition in partitions
    }


def provenance_tags(code_version: str, inputs: Mapping[PipelineAsset, UpstreamVersion]) -> dict[str, str]:
    """Dagster's provenance tags for one materialization: its code version, each input's data version
    and event pointer, and its own data version (the hash of those, as Dagster computes it)."""
    input_versions = {dg.AssetKey(asset.value): version.data_version for asset, version in inputs.items()}
    tags = {CODE_VERSION_TAG: code_version}
    for asset, version in inputs.items():
        key = dg.AssetKey(asset.value)
        tags[get_input_data_version_tag(key)] = version.data_version.value
        tags[get_input_event_pointer_tag(key)] = (
            str(version.storage_id) if version.storage_id is not None else NULL_EVENT_POINTER
        )
    tags[DATA_VERSION_TAG] = compute_logical_data_version(code_version, input_versions).value
    return tags
