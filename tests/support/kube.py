"""kubectl against the local control plane, for the tests that drive a cluster.

`Kubectl` runs the cluster's own kubectl (the version the control plane was built with) with
its kubeconfig, in one namespace when given one. A command that fails raises `CommandError`,
an AssertionError whose message carries kubectl's stderr, unless ``check=False`` is asked.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from heartbeat_localstack.cluster.control_plane import Cluster

Object = dict[str, Any]

SIMULATION_CRD = (
    Path(__file__).resolve().parents[2]
    / "charts/heartbeat/crds/heartbeatsimulations.heartbeat.dev.yaml"
)

# The marks of a module of tests on the local control plane (``kube_cluster``). With
# HEARTBEAT_BUILD_CLUSTER=1 the session's cluster fixture may run the first build (tens of
# minutes) inside the first test that needs it.
ON_THE_CLUSTER = [
    pytest.mark.integration,
    pytest.mark.timeout(3600 if os.environ.get("HEARTBEAT_BUILD_CLUSTER") == "1" else 300),
]


class CommandError(AssertionError):
    """kubectl (or helm) failed; the message carries what it printed on stderr."""


@dataclass(frozen=True)
class Kubectl:
    cluster: Cluster
    namespace: str = ""

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        scope = ["--namespace", self.namespace] if self.namespace else []
        done = subprocess.run(
            [
                str(self.cluster.kubectl),
                "--kubeconfig",
                str(self.cluster.kubeconfig),
                *scope,
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise CommandError(f"kubectl {' '.join(args)} failed:\n{done.stderr}")
        return done

    def get(self, *args: str) -> Any:
        """``kubectl get ... -o json``, parsed; fails when there is no such object."""
        return json.loads(self.run("get", *args, "-o", "json").stdout)

    def find(self, *args: str) -> Object | None:
        """``kubectl get <kind> <name>``, None when there is no such object."""
        found = self.run("get", *args, "--ignore-not-found", "-o", "json").stdout
        return json.loads(found) if found.strip() else None

    def items(self, *args: str) -> list[Object]:
        items: list[Object] = self.get(*args)["items"]
        return items

    def apply(self, objects: Object | Iterable[Object], *flags: str) -> Any:
        """``kubectl apply`` of one object or a List of them; what the server answered."""
        if isinstance(objects, dict):
            manifest = objects
        else:
            manifest = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
        answer = self.run(
            "apply",
            "--validate=strict",
            "-o",
            "json",
            *flags,
            "-f",
            "-",
            stdin=json.dumps(manifest),
        )
        return json.loads(answer.stdout)

    def wait(self, what: str, condition: str, timeout: int = 60) -> None:
        """``kubectl wait --for=<condition>``, failing after `timeout` seconds."""
        self.run("wait", what, f"--for={condition}", f"--timeout={timeout}s", timeout=timeout + 30)


def simulation_namespace(cluster: Cluster, prefix: str) -> Kubectl:
    """`Kubectl` in a new namespace, ``<prefix>-<8 hex>``, of a cluster that serves the chart's
    HeartbeatSimulation CRD (applied and Established first); the caller deletes it."""
    admin = Kubectl(cluster)
    admin.run("apply", "-f", str(SIMULATION_CRD))
    admin.wait("crd/heartbeatsimulations.heartbeat.dev", "condition=Established")
    namespace = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin.run("create", "namespace", namespace)
    return Kubectl(cluster, namespace)
