"""The instance configurations deploy/ ships load through Dagster (launchers and log managers built,
against PostgreSQL, with no cluster), and say the same as production's where they should."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster_aws.ecs import EcsRunLauncher
from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
from dagster_k8s import K8sRunLauncher
from moto import mock_aws

from tests.fixtures.postgres import create_database, drop_database

ROOT = Path(__file__).parents[2]
PRODUCTION = ROOT / "scryon_dagster" / "deploy" / "dagster.production.yaml"
MULTIHOST = ROOT / "deploy" / "dagster.multihost.yaml"
ECS = ROOT / "deploy" / "ecs" / "dagster.yaml"
K8S = ROOT / "deploy" / "kubernetes" / "dagster-instance.yaml"
HELM_VALUES = ROOT / "deploy" / "kubernetes" / "values.yaml"

KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: not-a-real-token}}]
contexts: [{name: ctx, context: {cluster: c, user: u}}]
current-context: ctx
"""


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


@pytest.fixture
def dagster_env(postgres_server_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    url = create_database(postgres_server_url, "scryon_dagster_deploy")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", url.replace("postgresql://", "postgresql+psycopg2://", 1))
    monkeypatch.setenv("DAGSTER_COMPUTE_LOGS_BUCKET", "compute-logs")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    try:
        yield
    finally:
        drop_database(postgres_server_url, url)


def _instance(home: Path, config: dict[str, Any]) -> dg.DagsterInstance:
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return dg.DagsterInstance.from_config(str(home))


@pytest.mark.parametrize("path", [MULTIHOST, ECS, K8S], ids=lambda path: path.parent.name + "/" + path.name)
def test_deployments_keep_production_settings(path: Path) -> None:
    """Each is production's configuration plus its launcher and log manager, nothing else changed."""
    production = _load(PRODUCTION)
    deployed = _load(path)
    assert {key: deployed.get(key) for key in production} == production
    assert set(deployed) - set(production) <= {"run_launcher", "compute_logs"}


def test_multihost_instance_loads_with_step_logs_in_s3(tmp_path: Path, dagster_env: None) -> None:
    with _instance(tmp_path / "home", _load(MULTIHOST)) as instance:
        assert isinstance(instance.compute_log_manager, S3ComputeLogManager)
        assert not instance.run_retries_enabled
        assert instance.get_runs() == []


def test_ecs_instance_builds_its_run_launcher(tmp_path: Path, dagster_env: None) -> None:
    with mock_aws(), _instance(tmp_path / "home", _load(ECS)) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, EcsRunLauncher)
        assert launcher.secrets_tags == ["dagster"]
        assert launcher.run_resources == {"cpu": "1024", "memory": "4096"}
        assert launcher.container_name == "scryon-code-server"


def test_kubernetes_instance_builds_its_run_launcher(tmp_path: Path, dagster_env: None) -> None:
    config = _load(K8S)
    # no cluster here: the launcher reads a kubeconfig instead of the pod's in-cluster credentials
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    config["run_launcher"]["config"] |= {"load_incluster_config": False, "kubeconfig_file": str(kubeconfig)}
    with _instance(tmp_path / "home", config) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, K8sRunLauncher)
        assert launcher.job_namespace == "scryon"
        assert launcher.env_secrets == ["scryon-dagster-env"]


def test_helm_values_match_the_instance_and_the_code_location() -> None:
    values = _load(HELM_VALUES)
    instance = _load(K8S)
    launcher = instance["run_launcher"]["config"]
    helm_launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert values["runLauncher"]["type"] == instance["run_launcher"]["class"]
    assert helm_launcher["jobNamespace"] == launcher["job_namespace"]
    assert [secret["name"] for secret in helm_launcher["envSecrets"]] == launcher["env_secrets"]
    assert helm_launcher["resources"] == launcher["resources"]
    assert (
        helm_launcher["runK8sConfig"]["podSpecConfig"]["restartPolicy"]
        == (launcher["run_k8s_config"]["pod_spec_config"]["restart_policy"])
    )

    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    runs = instance["concurrency"]["runs"]
    assert queue["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert queue["tagConcurrencyLimits"] == runs["tag_concurrency_limits"]
    coordinator = instance["run_coordinator"]["config"]
    assert queue["dequeueIntervalSeconds"] == coordinator["dequeue_interval_seconds"]
    assert queue["dequeueUseThreads"] == coordinator["dequeue_use_threads"]
    assert queue["dequeueNumWorkers"] == coordinator["dequeue_num_workers"]
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert monitoring["maxRuntimeSeconds"] == instance["run_monitoring"]["max_runtime_seconds"]
    assert values["dagsterDaemon"]["runRetries"]["enabled"] is instance["run_retries"]["enabled"] is False

    module = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", module]
