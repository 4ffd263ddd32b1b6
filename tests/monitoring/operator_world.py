"""An operator under monitoring, on the local Kubernetes control plane.

The chart's CRD on a real control plane (the session's ``kube_cluster``), a real
``heartbeat operator`` serving one namespace with only the chart's operator Role and
serving /metrics on its own port, and a real Prometheus scraping it every second with the
alerting rules loaded. Before the tests run, the operator serves three simulations, one in
each state a dashboard must tell apart (``SIMULATIONS``), and Prometheus has scraped them
long enough for rates.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from heartbeat_localstack.cluster.control_plane import Cluster
from heartbeat_localstack.ports import free_port
from heartbeat_localstack.process import tail
from heartbeat_localstack.prometheus import PrometheusServer
from tests.integration.pipeline import stop
from tests.monitoring.queries import RULES
from tests.operator.cluster import operator_kubeconfig, simulation
from tests.support.kube import Kubectl, simulation_namespace

SCRAPE_INTERVAL = "1s"
READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class Simulated:
    """A HeartbeatSimulation the world applies, and what the operator must report for it."""

    spec: dict[str, Any]
    desired: int  # generator pods asked for
    ready: bool  # its Ready condition
    paused: bool  # its Paused condition


SIMULATIONS = {
    # Runs three generator pods, all ready.
    "ward": Simulated({"customers": 9, "replicas": 3}, desired=3, ready=True, paused=False),
    # Paused from the start: no pods, not Ready on purpose.
    "night": Simulated(
        {"customers": 4, "replicas": 2, "paused": True}, desired=0, ready=False, paused=True
    ),
    # Asks for more pods than customers: runs one per customer, stays not Ready (a spec
    # problem, reconciled as "invalid").
    "crowd": Simulated({"customers": 2, "replicas": 5}, desired=2, ready=False, paused=False),
}


@dataclass
class Operated:
    kube: Kubectl
    prometheus: PrometheusServer
    process: subprocess.Popen[bytes]
    logs: Path

    @property
    def namespace(self) -> str:
        return self.kube.namespace

    def value(self, expr: str) -> float:
        """The sum of an instant query's values; 0 when it returns nothing."""
        return sum(float(item["value"][1]) for item in self.prometheus.query(expr))

    def by_simulation(self, expr: str) -> dict[str, float]:
        """An instant query's values keyed by the ``simulation`` label."""
        return {
            item["metric"]["simulation"]: float(item["value"][1])
            for item in self.prometheus.query(expr)
        }

    def diagnostics(self) -> str:
        listed = self.kube.run("get", "heartbeatsimulations,statefulsets,pods", check=False)
        return "\n".join(
            [
                f"--- operator.log\n{tail(self.logs / 'operator.log', 25)}",
                f"--- prometheus.log\n{tail(self.prometheus.log_path, 10)}",
                f"--- kubectl get\n{listed.stdout}{listed.stderr}",
            ]
        )


def _spawn_operator(
    kubeconfig: Path, namespace: str, port: int, logs: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "OPERATOR_RESYNC_INTERVAL_SECONDS": "5",
        "METRICS_HOST": "127.0.0.1",
        # The generators' settings; nothing in this world runs them (kwok fakes the pods).
        "KAFKA_BOOTSTRAP_SERVERS": "kafka.example:9092",
        "LOG_LEVEL": "INFO",
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    command = [
        sys.executable, "-m", "heartbeat", "operator",
        "--namespace", namespace, "--metrics-port", str(port),
    ]  # fmt: skip
    # The working folder holds no .env: a developer's file must not change what is measured.
    with (logs / "operator.log").open("ab") as log:
        return subprocess.Popen(command, cwd=logs, env=env, stdout=log, stderr=subprocess.STDOUT)


def _condition(kind: str, name: str) -> str:
    return f'max(heartbeat_operator_condition{{simulation="{name}", type="{kind}"}})'


def _wait_until_every_simulation_is_reported(world: Operated) -> None:
    checks: dict[str, Callable[[], bool]] = {
        "the operator scraped": lambda: world.value('up{job="heartbeat"} == 1') == 1,
        "every simulation served": lambda: (
            world.value("max(heartbeat_operator_simulations)") == len(SIMULATIONS)
        ),
        # A resync seen between two scrapes, so rates of reconciliations are not flat.
        "resyncs counted": lambda: (
            world.value(
                'count(rate(heartbeat_operator_reconcile_total{result=~"ok|invalid"}[30s]) > 0)'
            )
            == 2
        ),
    }
    for name, expected in SIMULATIONS.items():
        checks[f"{name}: {expected}"] = lambda name=name, expected=expected: (
            world.value(f'max(heartbeat_operator_ready_replicas{{simulation="{name}"}})')
            == expected.desired
            and world.value(_condition("Ready", name)) == int(expected.ready)
            and world.value(_condition("Paused", name)) == int(expected.paused)
        )
    deadline = time.monotonic() + READY_TIMEOUT
    pending = dict(checks)
    while pending:
        if world.process.poll() is not None:
            pytest.fail(
                f"the operator exited with {world.process.returncode}\n{world.diagnostics()}"
            )
        pending = {name: check for name, check in pending.items() if not check()}
        if pending and time.monotonic() > deadline:
            pytest.fail(f"still waiting for {sorted(pending)}\n{world.diagnostics()}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def operated(kube_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operated]:
    logs = tmp_path_factory.mktemp("operator-monitoring")
    kube = simulation_namespace(kube_cluster, "mon")
    namespace = kube.namespace
    port = free_port()
    prometheus = PrometheusServer(
        logs / "prometheus",
        targets=[f"127.0.0.1:{port}"],
        rules_files=[RULES],
        port=free_port(),
        scrape_interval=SCRAPE_INTERVAL,
    )
    process = None
    try:
        kubeconfig = operator_kubeconfig(kube, namespace, logs / "kubeconfig")
        for name, simulated in SIMULATIONS.items():
            kube.apply(simulation(name, **simulated.spec))
        process = _spawn_operator(kubeconfig, namespace, port, logs)
        prometheus.start()
        world = Operated(kube, prometheus, process, logs)
        _wait_until_every_simulation_is_reported(world)
        yield world
    finally:
        if process is not None:
            stop(process)
        prometheus.stop()
        kube.run("delete", "namespace", namespace, "--wait=false", check=False)
