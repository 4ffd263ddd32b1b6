"""A pod of the project's image really runs on the local cluster's real node."""

from __future__ import annotations

import json

import pytest

from heartbeat_localstack.cluster import api_address
from tests.support.kube import Kubectl

from .conftest import IMAGE, RealCluster

# The first test also waits for the cluster to start and the images to be copied.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.real_node,
    pytest.mark.slow,
    pytest.mark.timeout(600),
]


@pytest.fixture(scope="module")
def kubectl(real_cluster: RealCluster) -> Kubectl:
    """The cluster's kubectl, in the default namespace; a command that fails fails the test."""
    return real_cluster.kubectl()


@pytest.fixture(scope="module")
def pod(kubectl: Kubectl) -> str:
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "heartbeat", "labels": {"app": "heartbeat"}},
        "spec": {
            "containers": [{"name": "heartbeat", "image": IMAGE, "command": ["sleep", "3600"]}]
        },
    }
    kubectl.apply(manifest)
    kubectl.wait("pod/heartbeat", "condition=Ready", timeout=90)
    return "heartbeat"


def test_heartbeat_help_runs_inside_a_pod_of_the_image(kubectl: Kubectl, pod: str) -> None:
    assert "usage: heartbeat" in kubectl.exec(pod, "heartbeat", "--help")


def test_a_service_name_resolves_from_a_pod(kubectl: Kubectl, pod: str) -> None:
    kubectl.run("create", "service", "clusterip", "readings", "--tcp=80:8080")
    cluster_ip = kubectl.get("service", "readings")["spec"]["clusterIP"]
    lookup = "import socket; print(socket.gethostbyname('readings'))"
    assert kubectl.exec(pod, "python", "-c", lookup).strip() == cluster_ip


def test_the_node_reports_a_real_container_runtime(kubectl: Kubectl) -> None:
    runtimes = [
        node["status"]["nodeInfo"]["containerRuntimeVersion"] for node in kubectl.items("nodes")
    ]
    assert runtimes, "no node"
    assert all(runtime.startswith("containerd://") for runtime in runtimes), runtimes


def test_a_pod_lists_configmaps_through_the_kubernetes_service(kubectl: Kubectl) -> None:
    """The `kubernetes` Service has an endpoint pods reach, and its certificate names the
    Service: a pod's own service-account token lists ConfigMaps through it, verified."""
    account = "lister"
    rbac = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": account},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": account},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": account,
                },
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": "default"}],
            },
        ],
    }
    kubectl.apply(rbac)
    script = (
        "import json, ssl, urllib.request\n"
        "sa = '/var/run/secrets/kubernetes.io/serviceaccount'\n"
        "token = open(sa + '/token').read()\n"
        "context = ssl.create_default_context(cafile=sa + '/ca.crt')\n"
        "request = urllib.request.Request(\n"
        "    'https://kubernetes.default.svc/api/v1/namespaces/default/configmaps',\n"
        "    headers={'Authorization': 'Bearer ' + token})\n"
        "with urllib.request.urlopen(request, context=context, timeout=20) as answer:\n"
        "    items = json.load(answer)['items']\n"
        "print(json.dumps(sorted(item['metadata']['name'] for item in items)))\n"
    )
    kubectl.run(
        "run",
        "lister",
        f"--image={IMAGE}",
        "--restart=Never",
        "--image-pull-policy=Never",
        f"--overrides={json.dumps({'spec': {'serviceAccountName': account}})}",
        "--command",
        "--",
        "python",
        "-c",
        script,
    )
    finished = kubectl.run(
        "wait",
        "pod/lister",
        "--for=jsonpath={.status.phase}=Succeeded",
        "--timeout=90s",
        check=False,
    )
    logs = kubectl.logs("pod/lister")
    assert finished.returncode == 0, f"{finished.stderr}\n{logs}"
    assert "kube-root-ca.crt" in json.loads(logs.strip().splitlines()[-1])


def test_the_kubernetes_service_points_at_the_api_server(kubectl: Kubectl) -> None:
    endpoints = kubectl.get("endpointslice", "kubernetes").get("endpoints") or []
    addresses = [address for endpoint in endpoints for address in endpoint["addresses"]]
    assert addresses == [api_address.ADDRESS]
