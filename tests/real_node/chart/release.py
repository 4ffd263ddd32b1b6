"""The dev-deps and heartbeat charts installed onto the real node, and what the tests do with them.

One install serves a whole test module (the machine has 2 cores): `Release.install` runs
`helm install --wait` of charts/dev-deps (Kafka and PostgreSQL) and of charts/heartbeat with
the local images, and the tests send known batches through it with `Release.send`, then
compare what PostgreSQL holds with what the batch says it must (`Release.wait_stored`).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.kube import Kubectl, Object, is_ready, wait_until

from .batches import Batch
from .database import Database

ROOT = Path(__file__).resolve().parents[3]
CHARTS = ROOT / "charts"
RELEASE = "heartbeat"
DEPS = "dev-deps"
HELM_WAIT = "10m"
# How long a helm command may take, its own --wait included.
HELM_SECONDS = 900.0
TOPIC = "heartbeats"
PARTITIONS = 6
# The dev-deps chart's PostgreSQL: its defaults, which the heartbeat chart is given.
PG_USER = PG_PASSWORD = PG_DATABASE = "heartbeat"
CONSUMERS = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=consumer"
PRODUCERS = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=producer"
# The chart's own producer simulates these customers; the batches use others.
CHART_PRODUCER_CUSTOMERS = 20


def heartbeat_values(image: str) -> dict[str, Any]:
    """Values of charts/heartbeat for the real node: local image, small requests, quick retries."""
    repository, tag = image.rsplit(":", 1)
    return {
        # Never: the image is on the node already, and no registry answers here.
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "postgresql": {"password": PG_PASSWORD},
        "kafka": {"topicPartitions": PARTITIONS, "sessionTimeoutSeconds": 15},
        # Back within seconds of PostgreSQL returning, not half a minute.
        "config": {"retryMaxSeconds": 5},
        "producer": {
            "customers": CHART_PRODUCER_CUSTOMERS,
            "firstCustomer": 1,
            "rate": 2,
            "seed": 7,
        },
        "consumer": {
            "replicas": 1,
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
        },
        # Not what these tests are about, and each would take CPU from the 2 cores.
        "operator": {"enabled": False},
        "maintenance": {"enabled": False},
        "dashboards": {"enabled": False},
    }


@dataclass
class Release:
    kube: Kubectl
    image: str
    work: Path
    dev_deps_values: dict[str, Any]
    crictl: list[str]
    installed: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def on_node(self) -> list[str]:
        """IDs of the containers of the namespace that run on the node, asked of containerd."""
        label = f"io.kubernetes.pod.namespace={self.kube.namespace}"
        listed = subprocess.run(
            [*self.crictl, "ps", "--quiet", "--label", label],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return listed.stdout.split()

    @property
    def db(self) -> Database:
        return Database(self.kube, "postgresql", PG_USER, PG_PASSWORD, PG_DATABASE)

    # -- install, upgrade, uninstall ------------------------------------------------------

    def install(self) -> None:
        self._timed("install dev-deps", self._helm_install, DEPS, self.dev_deps_values)
        self._timed("install heartbeat", self._helm_install, RELEASE, heartbeat_values(self.image))
        self.installed = True

    def _helm_install(self, name: str, values: dict[str, Any]) -> None:
        path = self.work / f"{name}-values.yaml"
        path.write_text(yaml.safe_dump(values))
        chart = CHARTS / name
        self.kube.helm_ok(
            "install",
            name,
            str(chart),
            "--values",
            str(path),
            "--wait",
            "--timeout",
            HELM_WAIT,
            timeout=HELM_SECONDS,
        )

    def upgrade(self, *sets: str) -> None:
        """`helm upgrade --reuse-values --wait` of the heartbeat release with `--set`s."""
        flags = [arg for s in sets for arg in ("--set", s)]
        self.kube.helm_ok(
            "upgrade",
            RELEASE,
            str(CHARTS / RELEASE),
            "--reuse-values",
            *flags,
            "--wait",
            "--timeout",
            HELM_WAIT,
            timeout=HELM_SECONDS,
        )

    def uninstall(self) -> None:
        for name in (RELEASE, DEPS):
            self.kube.helm_ok(
                "uninstall",
                name,
                "--wait",
                "--timeout",
                "5m",
                "--ignore-not-found",
                timeout=HELM_SECONDS,
            )
        self.installed = False

    def _timed(self, what: str, step: Any, *args: Any) -> None:
        started = time.monotonic()
        step(*args)
        self.timings[what] = time.monotonic() - started

    # -- pods -----------------------------------------------------------------------------

    def pods(self, selector: str) -> list[Object]:
        """Pods of `selector` that are not on their way out."""
        return self.kube.live_pods(selector)

    def consumers(self) -> list[Object]:
        return self.pods(CONSUMERS)

    def wait_consumers(self, count: int, seconds: float = 300) -> list[str]:
        """Waits until exactly `count` consumer pods exist, all Ready; returns their names."""

        def settled() -> bool:
            every = self.kube.items("pods", "--selector", CONSUMERS)
            return len(every) == count and all(is_ready(p) for p in every)

        wait_until(self.kube, f"{count} Ready consumer pods and no other", settled, seconds)
        return sorted(p["metadata"]["name"] for p in self.consumers())

    def http_get(self, pod: str, path: str) -> tuple[int, str]:
        """GET on the pod's metrics port from inside the pod: (status, body)."""
        script = (
            "import sys, urllib.request, urllib.error\n"
            "try:\n"
            f"    r = urllib.request.urlopen('http://127.0.0.1:8000{path}', timeout=5)\n"
            "    print(r.status); print(r.read().decode())\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(e.code); print(e.read().decode())\n"
        )
        out = self.kube.exec(pod, "python", "-c", script)
        status, _, body = out.partition("\n")
        return int(status), body

    def metric(self, pod: str, name: str) -> float:
        """Sum of every sample of the metric `name` the pod serves."""
        _, body = self.http_get(pod, "/metrics")
        total = 0.0
        for line in body.splitlines():
            if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    # -- batches --------------------------------------------------------------------------

    def send(self, batch: Batch) -> None:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
            "KAFKA_TOPIC": TOPIC,
            "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
        }
        self.kube.apply(batch.config_map())
        self.kube.apply(batch.job(self.image, env))

    def wait_sent(self, batch: Batch, seconds: float = 600) -> None:
        """Waits until the batch's Job succeeded; fails at once, with its log, if it failed."""
        job = f"job/{batch.job_name}"

        def done() -> bool:
            status = self.kube.get(job).get("status", {})
            if status.get("failed"):
                raise AssertionError(
                    f"{job} failed:\n{self.kube.logs(job)}\n{self.kube.diagnostics()}"
                )
            return bool(status.get("succeeded"))

        self.timings[f"send {batch.name}"] = wait_until(
            self.kube, f"{job} succeeded", done, seconds
        )

    def wait_flowing(self, batch: Batch, seconds: float = 180) -> None:
        """Waits until the first readings of the batch are stored: it is in flight from here."""
        wait_until(
            self.kube,
            f"the first readings of batch {batch.name} stored",
            lambda: self.stored_count(batch) > 0,
            seconds,
        )

    def stored_count(self, batch: Batch) -> int:
        first, last = batch.customer_ids.start, batch.customer_ids.stop - 1
        return self.db.count(
            f"SELECT count(*) FROM heartbeats WHERE customer_id BETWEEN {first} AND {last}"
        )

    def wait_stored(self, batch: Batch, seconds: float = 600) -> None:
        """Waits until PostgreSQL holds exactly the batch's readings and dead letters.

        Exactly: every expected row once and no other row of its customers; every refused
        message once in `dead_letters`, with its reason. Fails with what is missing and what
        is there too many times.
        """
        expected = batch.expected()
        seen: dict[str, Counter[Any]] = {}

        def exact() -> bool:
            seen["rows"] = self.db.rows(batch)
            seen["dead letters"] = self.db.dead_letters(batch)
            return seen["rows"] == expected.rows and seen["dead letters"] == expected.dead_letters

        def explain() -> str:
            return "; ".join(
                [
                    difference("rows", expected.rows, seen.get("rows", Counter())),
                    difference(
                        "dead letters", expected.dead_letters, seen.get("dead letters", Counter())
                    ),
                ]
            )

        took = wait_until(
            self.kube, f"batch {batch.name} stored exactly", exact, seconds, 3.0, explain
        )
        self.timings[f"store {batch.name}"] = took

    def dead_letter_topic(self, pod: str) -> list[dict[str, Any]]:
        """Every message on the dead-letter topic, read from the beginning inside `pod`."""
        out = self.kube.exec(
            pod,
            "heartbeat",
            "tail",
            "--dlq",
            "--from-beginning",
            "--idle-timeout",
            "15",
            "--json",
            timeout=180,
        )
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def difference(what: str, expected: Counter[Any], found: Counter[Any]) -> str:
    missing = expected - found
    extra = found - expected
    return (
        f"{what}: expected {expected.total()}, found {found.total()}; "
        f"{missing.total()} missing (e.g. {_some(missing)}), "
        f"{extra.total()} unexpected or doubled (e.g. {_some(extra)})"
    )


def _some(counter: Counter[Any]) -> list[Hashable]:
    return sorted(counter)[:5]
