"""A pod of the project's image really runs on the local cluster's real node."""

from __future__ import annotations

import json
import subprocess

import pytest

from heartbeat_localstack.cluster import api_address

from .conftest import IMAGE, RealCluster

# The first test also waits for the cluster to start and the images to be copied.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.real_node,
    pytest.mark.slow,
    pytest.mark.timeout(600),
]


@pytest.fixture(scope="module")
def kubectl(real_cluster: RealCluster) -> list[str]:
    return real_cluster.kubectl


def _run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def pod(kubectl: list[str]) -> str:
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "heartbeat", "labels": {"app": "heartbeat"}},
        "spec": {
            "containers": [{"name": "heartbeat", "image": IMAGE, "command": ["sleep", "3600"]}]
        },
    }
    assert _run([*kubectl, "apply", "-f", "-"], json.dumps(manifest)).returncode == 0
    waited = _run([*kubectl, "wait", "--for=condition=Ready", "pod/heartbeat", "--timeout=90s"])
    assert waited.returncode == 0, waited.stderr
    return "heartbeat"


def test_heartbeat_help_runs_inside_a_pod_of_the_image(kubectl: list[str], pod: str) -> None:
    result = _run([*kubectl, "exec", pod, "--", "heartbeat", "--help"])
    assert result.returncode == 0, result.stderr
    assert "usage: heartbeat" in result.stdout


def test_a_service_name_resolves_from_a_pod(kubectl: list[str], pod: str) -> None:
    created = _run([*kubectl, "create", "service", "clusterip", "readings", "--tcp=80:8080"])
    assert created.returncode == 0, created.stderr
    cluster_ip = _run(
        [*kubectl, "get", "service", "readings", "-o", "jsonpath={.spec.clusterIP}"]
    ).stdout.strip()
    lookup = "import socket; print(socket.gethostbyname('readings'))"
    resolved = _run([*kubectl, "exec", pod, "--", "python", "-c", lookup])
    assert resolved.returncode == 0, resolved.stderr
    assert resolved.stdout.strip() == cluster_ip


def test_the_node_reports_a_real_container_runtime(kubectl: list[str]) -> None:
    runtime = _run(
        [
            *kubectl,
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[*].status.nodeInfo.containerRuntimeVersion}",
        ]
    ).stdout
    assert runtime.startswith("containerd://")


def test_a_pod_lists_configmaps_through_the_kubernetes_service(kubectl: list[str]) -> None:
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
    applied = _run([*kubectl, "apply", "-f", "-"], json.dumps(rbac))
    assert applied.returncode == 0, applied.stderr
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
    created = _run(
        [
            *kubectl,
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
        ]
    )
    assert created.returncode == 0, created.stderr
    finished = _run(
        [
            *kubectl,
            "wait",
            "pod/lister",
            "--for=jsonpath={.status.phase}=Succeeded",
            "--timeout=90s",
        ]
    )
    logs = _run([*kubectl, "logs", "pod/lister"])
    assert finished.returncode == 0, f"{finished.stderr}\n{logs.stdout}{logs.stderr}"
    assert "kube-root-ca.crt" in json.loads(logs.stdout.strip().splitlines()[-1])


def test_the_kubernetes_service_points_at_the_api_server(kubectl: list[str]) -> None:
    endpoint = _run(
        [
            *kubectl,
            "get",
            "endpointslice",
            "kubernetes",
            "-o",
            "jsonpath={.endpoints[*].addresses[*]}",
        ]
    )
    assert endpoint.returncode == 0, endpoint.stderr
    assert endpoint.stdout.split() == [api_address.ADDRESS]
