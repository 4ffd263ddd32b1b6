"""Migrations run as a pre-install/pre-upgrade hook; `helm test` checks the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .helm import CHART, RELEASE, Helm
from .manifests import container, env_of, named, of_kind

pytestmark = pytest.mark.chart


def test_migration_job_is_a_pre_install_and_pre_upgrade_hook_removed_once_it_succeeded(
    rendered: Any, scenario: Path
) -> None:
    job = named(rendered(scenario), "Job", f"{RELEASE}-migrations")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    assert int(annotations["helm.sh/hook-weight"]) == 0
    assert container(job, "migrate")["args"] == ["migrate", "up"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_migration_job_reads_credentials_created_before_it(defaults: Any) -> None:
    # On install the release's own Secret and ServiceAccount do not exist yet when the hook
    # runs: the Job must use a hook Secret of a lower weight and no ServiceAccount of ours.
    job = named(defaults, "Job", f"{RELEASE}-migrations")
    secret = named(defaults, "Secret", f"{RELEASE}-migrations")
    password = env_of(container(job, "migrate"))["PGPASSWORD"]
    assert password["secretKeyRef"]["name"] == secret["metadata"]["name"]
    assert secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < 0
    assert "serviceAccountName" not in job["spec"]["template"]["spec"]


def test_migration_job_uses_an_existing_secret_directly(rendered: Any) -> None:
    manifests = rendered(CHART / "ci" / "existing-secret-values.yaml")
    job = named(manifests, "Job", f"{RELEASE}-migrations")
    password = env_of(container(job, "migrate"))["PGPASSWORD"]
    assert password == {"secretKeyRef": {"name": "heartbeat-db", "key": "db-password"}}
    assert not of_kind(manifests, "Secret"), "every credential is in an existing Secret"


def test_migrations_can_be_left_to_the_operator_of_the_database(helm: Helm) -> None:
    manifests = helm.render(CHART, sets={"migrations.enabled": False})
    assert not of_kind(manifests, "Job")
    assert f"{RELEASE}-migrations" not in {m["metadata"]["name"] for m in manifests}


def test_helm_test_pod_checks_the_schema_and_the_consumers_readiness(defaults: Any) -> None:
    (pod,) = of_kind(defaults, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert container(pod, "migrations")["args"] == ["migrate", "status"]
    check = container(pod, "consumer-ready")
    assert f"http://{RELEASE}-consumer:8000/readyz" in check["args"][0]
    assert pod["spec"]["restartPolicy"] == "Never"
