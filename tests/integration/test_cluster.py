"""The local Kubernetes control plane behaves like a real cluster where the chart needs it.

Deployments become Available on kwok's fake nodes, ownerReferences are garbage-collected,
RBAC answers for ServiceAccounts, and Helm assumes the same Kubernetes minor as the server.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from heartbeat_localstack.cluster.control_plane import Cluster

pytest_plugins = ["heartbeat_localstack.cluster.fixtures"]

pytestmark = [
    pytest.mark.integration,
    # With HEARTBEAT_BUILD_CLUSTER=1 the session fixture may run the first build (tens of
    # minutes). The fixtures module is not imported here: pytest must load it as a plugin.
    pytest.mark.timeout(3600 if os.environ.get("HEARTBEAT_BUILD_CLUSTER") == "1" else 300),
]


def kubectl(
    cluster: Cluster, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cluster.kubectl), "--kubeconfig", str(cluster.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


def apply(cluster: Cluster, manifest: dict[str, Any]) -> None:
    kubectl(cluster, "apply", "-f", "-", stdin=json.dumps(manifest))


def get_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(kubectl(cluster, "get", *args, "-o", "json").stdout)


def wait_until_gone(cluster: Cluster, kind: str, name: str, namespace: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = kubectl(
            cluster, "get", kind, name, "-n", namespace, "--ignore-not-found", "-o", "name"
        )
        if not found.stdout.strip():
            return True
        time.sleep(0.5)
    return False


@pytest.fixture
def namespace(kube_cluster: Cluster) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:8]}"
    kubectl(kube_cluster, "create", "namespace", name)
    yield name
    kubectl(kube_cluster, "delete", "namespace", name, "--wait=false")


def test_deployment_becomes_available_with_its_pods_running_on_fake_nodes(
    kube_cluster: Cluster, namespace: str
) -> None:
    labels = {"app": "web"}
    apply(
        kube_cluster,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1"}]},
                },
            },
        },
    )

    kubectl(
        kube_cluster,
        "wait",
        "deployment/web",
        "-n",
        namespace,
        "--for=condition=Available",
        "--timeout=90s",
    )

    pods = get_json(kube_cluster, "pods", "-n", namespace, "-l", "app=web")["items"]
    assert [pod["status"]["phase"] for pod in pods] == ["Running", "Running"]
    assert all(pod["spec"]["nodeName"].startswith("kwok-node-") for pod in pods)


def test_deleting_an_owner_garbage_collects_its_dependents(
    kube_cluster: Cluster, namespace: str
) -> None:
    apply(
        kube_cluster,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "owner", "namespace": namespace},
        },
    )
    owner_uid = get_json(kube_cluster, "configmap", "owner", "-n", namespace)["metadata"]["uid"]
    owner_ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}
    apply(
        kube_cluster,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "dependent",
                "namespace": namespace,
                "ownerReferences": [owner_ref],
            },
        },
    )
    apply(
        kube_cluster,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "bystander", "namespace": namespace},
        },
    )

    kubectl(kube_cluster, "delete", "configmap", "owner", "-n", namespace)

    assert wait_until_gone(kube_cluster, "configmap", "dependent", namespace, seconds=60)
    assert get_json(kube_cluster, "configmap", "bystander", "-n", namespace)["metadata"]["name"]


def test_can_i_answers_for_a_service_account_by_impersonation(
    kube_cluster: Cluster, namespace: str
) -> None:
    kubectl(kube_cluster, "create", "serviceaccount", "reader", "-n", namespace)
    kubectl(
        kube_cluster,
        "create",
        "role",
        "pod-reader",
        "-n",
        namespace,
        "--verb=get,list,watch",
        "--resource=pods",
    )
    kubectl(
        kube_cluster,
        "create",
        "rolebinding",
        "reader",
        "-n",
        namespace,
        "--role=pod-reader",
        f"--serviceaccount={namespace}:reader",
    )
    as_reader = f"--as=system:serviceaccount:{namespace}:reader"

    allowed = kubectl(
        kube_cluster, "auth", "can-i", "list", "pods", "-n", namespace, as_reader, check=False
    )
    denied = kubectl(
        kube_cluster, "auth", "can-i", "delete", "pods", "-n", namespace, as_reader, check=False
    )
    elsewhere = kubectl(
        kube_cluster, "auth", "can-i", "list", "pods", "-n", "default", as_reader, check=False
    )

    assert (allowed.returncode, allowed.stdout.strip()) == (0, "yes")
    assert (denied.returncode, denied.stdout.strip()) == (1, "no")
    assert (elsewhere.returncode, elsewhere.stdout.strip()) == (1, "no")


def test_helm_and_kubectl_agree_with_the_server_on_the_kubernetes_version(
    kube_cluster: Cluster, tmp_path: Path
) -> None:
    versions = json.loads(kubectl(kube_cluster, "version", "-o", "json").stdout)
    server, client = versions["serverVersion"], versions["clientVersion"]
    chart = tmp_path / "probe"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (chart / "templates" / "version.yaml").write_text(
        "kind: ConfigMap\napiVersion: v1\nmetadata: {name: probe}\n"
        "data: {kube: {{ .Capabilities.KubeVersion.Minor | quote }}}\n"
    )
    # `helm template` without a cluster uses the default version linked into the binary.
    rendered = subprocess.run(
        [str(kube_cluster.helm), "template", str(chart)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout

    assert (server["major"], server["minor"]) == ("1", "34")
    assert server["gitVersion"] == client["gitVersion"]
    assert 'kube: "34"' in rendered
