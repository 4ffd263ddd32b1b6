"""charts/dev-deps and charts/heartbeat installed on the real node from the local images, and
what the tests ask of them: kubectl, SQL through the dev-deps PostgreSQL, the pods' addresses.

The release runs the operator and one consumer; its own producer simulates customers from
`PRODUCER_FIRST_CUSTOMER` on, far from those a test's HeartbeatSimulation simulates.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heartbeat_localstack.cluster import dev
from tests.support.polling import wait_for

from .conftest import RealCluster

NAMESPACE = "node-e2e"
CHARTS = Path(__file__).resolve().parents[2] / "charts"
PRODUCER_FIRST_CUSTOMER = 100_001
PRODUCER_CUSTOMERS = 20
HELM_TIMEOUT = "8m"


class CommandFailed(AssertionError):
    pass


@dataclass(frozen=True)
class Pipeline:
    """The releases in NAMESPACE, and the commands to look at them."""

    kubectl: list[str]

    def run(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        result = subprocess.run(
            [*self.kubectl, "-n", NAMESPACE, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise CommandFailed(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def sql(self, query: str) -> list[str]:
        """The rows of `query` (one column) in the pipeline's database, through psql in its pod."""
        user, database = dev.DATABASE["username"], dev.DATABASE["database"]
        out = self.run(
            "exec",
            "deploy/postgresql",
            "--",
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
        return sorted(self._pods(selector))

    def ready(self, selector: str, count: int) -> list[str]:
        """The pods matching `selector` if there are `count` of them, all Ready; else []."""
        pods = self._pods(selector)
        ready = [
            name
            for name, pod in pods.items()
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in pod.get("status", {}).get("conditions", [])
            )
        ]
        return sorted(ready) if len(pods) == count and len(ready) == count else []

    def _pods(self, selector: str) -> dict[str, Any]:
        items = json.loads(self.run("get", "pods", "-l", selector, "-o", "json"))["items"]
        return {
            p["metadata"]["name"]: p for p in items if not p["metadata"].get("deletionTimestamp")
        }

    def endpoints(self, service: str) -> list[str]:
        """`IP:port` of every ready pod behind `service`, from its EndpointSlices."""
        out = self.run(
            "get", "endpointslices", "-l", f"kubernetes.io/service-name={service}", "-o", "json"
        )
        found = []
        for item in json.loads(out)["items"]:
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
    return wait_for(check, timeout, what, interval=3, retrying=(CommandFailed,))


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
    try:
        _helm(cluster, work, "dev-deps", CHARTS / "dev-deps", cluster.dev_deps_values())
        _helm(cluster, work, "heartbeat", CHARTS / "heartbeat", heartbeat_values(cluster))
        yield Pipeline(cluster.kubectl)
    finally:
        subprocess.run(
            [*cluster.kubectl, "delete", "namespace", NAMESPACE, "--timeout=180s"],
            capture_output=True,
            timeout=240,
            check=False,
        )


def _helm(
    cluster: RealCluster, work: Path, release: str, chart: Path, values: dict[str, Any]
) -> None:
    values_file = work / f"{release}.json"
    values_file.write_text(json.dumps(values))
    # Helm's caches in the test's folder: the tests never touch the user's repositories.
    homes = {f"HELM_{k}_HOME": str(work / "helm" / k.lower()) for k in ("CACHE", "CONFIG", "DATA")}
    result = subprocess.run(
        [
            *cluster.helm,
            "install",
            release,
            str(chart),
            "-n",
            NAMESPACE,
            "--create-namespace",
            "--wait",
            "--timeout",
            HELM_TIMEOUT,
            "--values",
            str(values_file),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, **homes},
    )
    if result.returncode != 0:
        pods = subprocess.run(
            [*cluster.kubectl, "-n", NAMESPACE, "get", "pods,events", "-o", "wide"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        raise AssertionError(f"helm install {release}: {result.stderr}\n{pods}")
