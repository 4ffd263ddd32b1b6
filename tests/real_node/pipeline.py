"""charts/dev-deps and charts/heartbeat installed on the real node from the local images, and
what the tests ask of them: kubectl, SQL through the dev-deps PostgreSQL, the pods' addresses.

The release runs the operator and one consumer; its own producer simulates customers from
`PRODUCER_FIRST_CUSTOMER` on, far from those a test's HeartbeatSimulation simulates.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heartbeat_localstack.cluster import dev
from tests.support.kube import CommandError, Kubectl, condition
from tests.support.polling import wait_for

from .conftest import RealCluster

NAMESPACE = "node-e2e"
CHARTS = Path(__file__).resolve().parents[2] / "charts"
PRODUCER_FIRST_CUSTOMER = 100_001
PRODUCER_CUSTOMERS = 20
HELM_TIMEOUT = "8m"


@dataclass(frozen=True)
class Pipeline:
    """The releases in NAMESPACE, and what the tests ask of them through `kube`."""

    kube: Kubectl

    def sql(self, query: str) -> list[str]:
        """The rows of `query` (one column) in the pipeline's database, through psql in its pod."""
        user, database = dev.DATABASE["username"], dev.DATABASE["database"]
        out = self.kube.exec(
            "deploy/postgresql",
            "psql",
            "-U",
            user,
            database,
            "-AtX",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            query,
        )
        return out.split()

    def now(self) -> str:
        """The database's clock, as a timestamp literal."""
        return self.sql(
            "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US+00')"
        )[0]

    def pods(self, selector: str) -> list[str]:
        """Names of the pods matching `selector` that are not being deleted."""
        return sorted(p["metadata"]["name"] for p in self.kube.live_pods(selector))

    def ready(self, selector: str, count: int) -> list[str]:
        """The pods matching `selector` if there are `count` of them, all Ready; else []."""
        pods = self.kube.live_pods(selector)
        ready = sorted(p["metadata"]["name"] for p in pods if condition(p, "Ready") == "True")
        return ready if len(pods) == count and len(ready) == count else []

    def endpoints(self, service: str) -> list[str]:
        """`IP:port` of every ready pod behind `service`, from its EndpointSlices."""
        slices = self.kube.items(
            "endpointslices", "--selector", f"kubernetes.io/service-name={service}"
        )
        found = []
        for item in slices:
            ports = [p["port"] for p in item.get("ports") or []]
            for endpoint in item.get("endpoints") or []:
                if endpoint.get("conditions", {}).get("ready"):
                    found += [
                        f"{address}:{port}" for address in endpoint["addresses"] for port in ports
                    ]
        return sorted(found)


def eventually(check: Callable[[], Any], what: str, timeout: float = 240) -> Any:
    """The first truthy result of `check`, polled every 3 s; a kubectl that fails counts as
    "not yet"."""
    return wait_for(check, timeout, what, interval=3, retrying=(CommandError,))


def heartbeat_values(cluster: RealCluster) -> dict[str, Any]:
    values = dev.heartbeat_values(cluster.images)
    values["producer"] = {
        "customers": PRODUCER_CUSTOMERS,
        "firstCustomer": PRODUCER_FIRST_CUSTOMER,
        "rate": 20,
        "spikeProbability": 0,
    }
    values["consumer"] = {"replicas": 1}
    return values


@contextmanager
def installed(cluster: RealCluster, work: Path) -> Iterator[Pipeline]:
    """dev-deps and heartbeat installed with `helm install --wait`; the namespace goes after."""
    kube = cluster.kubectl(NAMESPACE)
    try:
        _helm(kube, work, "dev-deps", CHARTS / "dev-deps", cluster.dev_deps_values())
        _helm(kube, work, "heartbeat", CHARTS / "heartbeat", heartbeat_values(cluster))
        yield Pipeline(kube)
    finally:
        cluster.kubectl().run(
            "delete", "namespace", NAMESPACE, "--timeout=180s", check=False, timeout=240
        )


def _helm(kube: Kubectl, work: Path, release: str, chart: Path, values: dict[str, Any]) -> None:
    values_file = work / f"{release}.json"
    values_file.write_text(json.dumps(values))
    install = ["install", release, str(chart), "--create-namespace", "--wait"]
    result = kube.helm(
        *install, "--timeout", HELM_TIMEOUT, "--values", str(values_file), timeout=600
    )
    if result.returncode != 0:
        raise AssertionError(f"helm install {release}: {result.stderr}\n{kube.diagnostics()}")
