"""kubectl and helm against a local cluster, for the tests that drive one.

`Kubectl` runs the cluster's own kubectl and helm (the versions the control plane was built
with) with its kubeconfig, in one namespace when given one: the control plane of
``kube_cluster`` and the cluster with a real node (``tests/real_node``) alike. A command that
fails raises `CommandError`, an AssertionError whose message carries kubectl's stderr, unless
``check=False`` is asked. `wait_until` fails with `Kubectl.diagnostics()`: the namespace's
pods, their descriptions, the last lines of every container's log (and of its previous run)
and its events, so a failure on a busy machine can be read without rerunning it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from heartbeat_localstack.cluster.control_plane import Cluster
from tests.chart.helm import Helm, Result
from tests.support.polling import wait_for

Object = dict[str, Any]

# How much of each container's log and of the events `Kubectl.diagnostics` shows.
LOG_LINES = 40
EVENT_LINES = 60

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
            raise CommandError(
                f"kubectl {' '.join(args)} failed ({done.returncode}):\n{done.stderr}"
            )
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

    def exec(self, target: str, *command: str, timeout: float = 120) -> str:
        """What `command` printed, run by ``kubectl exec`` in `target` (a pod, deploy/...)."""
        return self.run("exec", target, "--", *command, timeout=timeout).stdout

    def logs(self, target: str) -> str:
        """Every container's log of `target`, or nothing when kubectl has none to give."""
        return self.run("logs", target, "--all-containers", check=False).stdout

    def live_pods(self, selector: str) -> list[Object]:
        """The pods of `selector` that are not on their way out."""
        return [
            pod
            for pod in self.items("pods", "--selector", selector)
            if not pod["metadata"].get("deletionTimestamp")
        ]

    def helm(self, *args: str, timeout: float = 120) -> Result:
        """The cluster's helm with its kubeconfig, in the namespace when there is one."""
        scope = ["--namespace", self.namespace] if self.namespace else []
        kubeconfig = ["--kubeconfig", str(self.cluster.kubeconfig)]
        return Helm(self.cluster.helm).run(*args, *kubeconfig, *scope, timeout=timeout)

    def helm_ok(self, *args: str, timeout: float = 120) -> str:
        """What `helm` printed; fails with its stderr when it fails."""
        result = self.helm(*args, timeout=timeout)
        if result.returncode != 0:
            raise CommandError(
                f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            )
        return result.stdout

    def diagnostics(self) -> str:
        """What the namespace looks like now, bounded, for a failure message."""
        parts = [self._section("pods", "get", "pods,jobs,deployments,services", "-o", "wide")]
        for pod in self.items("pods"):
            name = pod["metadata"]["name"]
            parts.append(self._section(f"describe pod {name}", "describe", "pod", name))
            for status in pod.get("status", {}).get("containerStatuses", []):
                log = ["logs", name, "-c", status["name"], f"--tail={LOG_LINES}"]
                parts.append(self._section(f"logs {name}/{status['name']}", *log))
                if status.get("restartCount", 0):
                    title = f"previous logs {name}/{status['name']}"
                    parts.append(self._section(title, *log, "--previous"))
        events = self._section("events", "get", "events", "--sort-by=.lastTimestamp")
        parts.append("\n".join(events.splitlines()[-EVENT_LINES:]))
        return "\n".join(parts)

    def _section(self, title: str, *args: str) -> str:
        try:
            done = self.run(*args, check=False, timeout=60)
        except subprocess.TimeoutExpired:
            return f"--- {title}: kubectl timed out"
        return f"--- {title}\n{done.stdout}{done.stderr}"


def wait_until(
    kube: Kubectl,
    what: str,
    check: Callable[[], bool],
    seconds: float,
    interval: float = 2.0,
    explain: Callable[[], str] | None = None,
) -> float:
    """Calls `check` until it holds (a kubectl that fails counts as "not yet"); returns the
    seconds it took, or fails with what `explain` says and `kube.diagnostics()`."""
    started = time.monotonic()
    try:
        wait_for(check, seconds, what, interval, retrying=(CommandError,))
    except AssertionError as exc:
        detail = explain() if explain is not None else ""
        raise AssertionError(f"{exc}. {detail}\n{kube.diagnostics()}") from None
    return time.monotonic() - started


def condition(obj: Object, kind: str) -> str | None:
    """The status ("True", "False", "Unknown") of a condition, None when there is none."""
    for c in obj.get("status", {}).get("conditions", []):
        if c["type"] == kind:
            return str(c["status"])
    return None


def is_ready(pod: Object) -> bool:
    return pod["status"].get("phase") == "Running" and condition(pod, "Ready") == "True"


def simulation_namespace(cluster: Cluster, prefix: str) -> Kubectl:
    """`Kubectl` in a new namespace, ``<prefix>-<8 hex>``, of a cluster that serves the chart's
    HeartbeatSimulation CRD (applied and Established first); the caller deletes it."""
    admin = Kubectl(cluster)
    admin.run("apply", "-f", str(SIMULATION_CRD))
    admin.wait("crd/heartbeatsimulations.heartbeat.dev", "condition=Established")
    return Kubectl(cluster, new_namespace(admin, prefix))


def new_namespace(kube: Kubectl, prefix: str) -> str:
    """A new namespace, ``<prefix>-<8 hex>``, so tests sharing a cluster never meet; the caller
    deletes it."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kube.run("create", "namespace", name)
    return name
