"""Drive the local control plane and the operator process for the integration tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from heartbeat_localstack.ports import free_port
from tests.support.kube import Kubectl
from tests.support.polling import wait_for

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts/heartbeat"
EXAMPLE = REPO / "operator/examples/heartbeatsimulation.yaml"


def simulation(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "heartbeat.dev/v1alpha1",
        "kind": "HeartbeatSimulation",
        "metadata": {"name": name},
        "spec": spec,
    }


def crash_looping(pod: dict[str, Any], restarts: int) -> dict[str, Any]:
    """The status a kubelet reports for a generator that keeps exiting (Kafka unreachable)."""
    (gen,) = pod["spec"]["containers"]
    return {
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": kind, "status": "False", "reason": "ContainersNotReady"}
                for kind in ("Ready", "ContainersReady")
            ],
            "containerStatuses": [
                {
                    "name": gen["name"],
                    "image": gen["image"],
                    "imageID": "",
                    "ready": False,
                    "started": False,
                    "restartCount": restarts,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                    "lastState": {
                        "terminated": {
                            "exitCode": 1,
                            "reason": "Error",
                            "startedAt": "2026-01-01T00:00:00Z",
                            "finishedAt": "2026-01-01T00:00:05Z",
                        }
                    },
                }
            ],
        }
    }


def ready_again(pod: dict[str, Any]) -> dict[str, Any]:
    (gen,) = pod["spec"]["containers"]
    return {
        "status": {
            "conditions": [
                {"type": kind, "status": "True"}
                for kind in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "containerStatuses": [
                {
                    "name": gen["name"],
                    "image": gen["image"],
                    "imageID": "",
                    "ready": True,
                    "started": True,
                    "restartCount": 5,
                    "state": {"running": {"startedAt": "2026-01-01T00:01:00Z"}},
                }
            ],
        }
    }


def operator_kubeconfig(admin: Kubectl, namespace: str, path: Path) -> Path:
    """A kubeconfig for a ServiceAccount bound to the chart's operator Role, nothing more."""
    role = subprocess.run(
        [
            str(admin.cluster.helm),
            "template",
            "hb",
            str(CHART),
            "--namespace",
            namespace,
            "--show-only",
            "templates/operator-role.yaml",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    role_name = yaml.safe_load(role)["metadata"]["name"]
    admin.run("apply", "-f", "-", stdin=role)
    admin.run("create", "serviceaccount", "operator")
    admin.run(
        "create", "rolebinding", "operator", f"--role={role_name}",
        f"--serviceaccount={namespace}:operator",
    )  # fmt: skip
    token = admin.run("create", "token", "operator", "--duration=1h").stdout.strip()
    raw = json.loads(
        admin.run("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout
    )
    cluster = raw["clusters"][0]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": "operator", "user": {"token": token}}],
                "contexts": [
                    {
                        "name": "operator",
                        "context": {
                            "cluster": cluster["name"],
                            "user": "operator",
                            "namespace": namespace,
                        },
                    }
                ],
                "current-context": "operator",
            }
        )
    )
    return path


class OperatorProcess:
    """``python -m heartbeat_operator`` as a child process, restartable, never left behind."""

    def __init__(
        self, kubeconfig: Path, namespace: str, workdir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.log = workdir / "operator.log"
        self._workdir = workdir
        self._env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "OPERATOR_NAMESPACES": namespace,
            "OPERATOR_RESYNC_INTERVAL_SECONDS": "5",
            "METRICS_HOST": "127.0.0.1",
            "METRICS_PORT": str(self.port),
            "KAFKA_BOOTSTRAP_SERVERS": "kafka.example:9092",
            "LOG_LEVEL": "INFO",
            **(env or {}),
        }
        self._env.pop("KUBERNETES_SERVICE_HOST", None)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "heartbeat_operator"],
                cwd=self._workdir,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: self.get("/readyz")[0] == 200, 60, "the operator's /readyz", interval=0.3)
        return self

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""
        except OSError:
            return 0, ""

    def metric(self, line_start: str) -> float | None:
        for line in self.get("/metrics")[1].splitlines():
            if line.startswith(line_start + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process is None:
            return 0
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(timeout=10)
        self.process = None
        return code

    def logged(self) -> str:
        return self.log.read_text(errors="replace")
