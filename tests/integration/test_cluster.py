"""The local Kubernetes control plane behaves like a real cluster where the chart needs it.

Deployments become Available on kwok's fake nodes, ownerReferences are garbage-collected,
RBAC answers for ServiceAccounts, and Helm assumes the same Kubernetes minor as the server.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from heartbeat_localstack.cluster.control_plane import Cluster
from tests.support.kube import ON_THE_CLUSTER, Kubectl, new_namespace
from tests.support.polling import wait_for

pytestmark = ON_THE_CLUSTER


@pytest.fixture(scope="module")
def kube(kube_cluster: Cluster) -> Kubectl:
    return Kubectl(kube_cluster)


@pytest.fixture
def namespace(kube: Kubectl) -> Iterator[str]:
    name = new_namespace(kube, "test")
    yield name
    kube.run("delete", "namespace", name, "--wait=false")


def test_deployment_becomes_available_with_its_pods_running_on_fake_nodes(
    kube: Kubectl, namespace: str
) -> None:
    labels = {"app": "web"}
    kube.apply(
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

    kube.run(
        "wait",
        "deployment/web",
        "-n",
        namespace,
        "--for=condition=Available",
        "--timeout=90s",
    )

    pods = kube.get("pods", "-n", namespace, "-l", "app=web")["items"]
    assert [pod["status"]["phase"] for pod in pods] == ["Running", "Running"]
    assert all(pod["spec"]["nodeName"].startswith("kwok-node-") for pod in pods)


def test_deleting_an_owner_garbage_collects_its_dependents(kube: Kubectl, namespace: str) -> None:
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "owner", "namespace": namespace},
        },
    )
    owner_uid = kube.get("configmap", "owner", "-n", namespace)["metadata"]["uid"]
    owner_ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}
    kube.apply(
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
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "bystander", "namespace": namespace},
        },
    )

    kube.run("delete", "configmap", "owner", "-n", namespace)

    wait_for(
        lambda: kube.find("configmap", "dependent", "-n", namespace),
        60,
        "the dependent ConfigMap collected",
        0.5,
        until=lambda found: found is None,
    )
    assert kube.get("configmap", "bystander", "-n", namespace)["metadata"]["name"]


def test_can_i_answers_for_a_service_account_by_impersonation(
    kube: Kubectl, namespace: str
) -> None:
    kube.run("create", "serviceaccount", "reader", "-n", namespace)
    kube.run(
        "create",
        "role",
        "pod-reader",
        "-n",
        namespace,
        "--verb=get,list,watch",
        "--resource=pods",
    )
    kube.run(
        "create",
        "rolebinding",
        "reader",
        "-n",
        namespace,
        "--role=pod-reader",
        f"--serviceaccount={namespace}:reader",
    )
    as_reader = f"--as=system:serviceaccount:{namespace}:reader"

    allowed = kube.run("auth", "can-i", "list", "pods", "-n", namespace, as_reader, check=False)
    denied = kube.run("auth", "can-i", "delete", "pods", "-n", namespace, as_reader, check=False)
    elsewhere = kube.run("auth", "can-i", "list", "pods", "-n", "default", as_reader, check=False)

    assert (allowed.returncode, allowed.stdout.strip()) == (0, "yes")
    assert (denied.returncode, denied.stdout.strip()) == (1, "no")
    assert (elsewhere.returncode, elsewhere.stdout.strip()) == (1, "no")


def test_helm_and_kubectl_agree_with_the_server_on_the_kubernetes_version(
    kube_cluster: Cluster, kube: Kubectl, tmp_path: Path
) -> None:
    versions = json.loads(kube.run("version", "-o", "json").stdout)
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
