"""A pod of the project's image really runs on the local cluster's real node."""

from __future__ import annotations

import json
import subprocess

import pytest

from .conftest import IMAGE, RealCluster

pytestmark = [pytest.mark.integration, pytest.mark.real_node, pytest.mark.slow]


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
