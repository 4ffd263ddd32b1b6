"""A real Prometheus (heartbeat_localstack's) scrapes the chart's pods on the real node, found
through the chart's metrics Services, and the pipeline dashboard's queries return their data.

The pods' addresses are on the node's bridge, which the host routes to: Prometheus scrapes
them directly, as it would inside the cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from heartbeat_localstack.prometheus import PrometheusServer
from tests.monitoring.queries import expand_promql, pipeline_panel_queries
from tests.monitoring.world import GRAFANA_INTERVALS

from .pipeline import Pipeline, eventually

# The first test also waits for the cluster and the two releases to come up.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.real_node,
    pytest.mark.slow,
    pytest.mark.timeout(900),
]

SERVICES = ("heartbeat-producer", "heartbeat-consumer", "heartbeat-operator")


@pytest.fixture(scope="module")
def prometheus(
    pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    targets = {service: pipeline.endpoints(service) for service in SERVICES}
    assert all(targets.values()), f"a metrics Service without a ready pod: {targets}"
    server = PrometheusServer(
        Path(tmp_path_factory.mktemp("prometheus")),
        targets=[target for found in targets.values() for target in found],
        scrape_interval="2s",
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _panel(dashboard: str, title: str) -> list[str]:
    return [
        expand_promql(q.text, GRAFANA_INTERVALS)
        for q in pipeline_panel_queries()
        if q.dashboard == dashboard and q.panel == title
    ]


def test_every_pod_behind_the_metrics_services_is_scraped(prometheus: PrometheusServer) -> None:
    def healthy() -> list[str]:
        targets = prometheus.active_targets()
        up = [t["scrapeUrl"] for t in targets if t["health"] == "up"]
        return up if targets and len(up) == len(targets) else []

    up = eventually(healthy, "every target up", timeout=60)
    assert all(url.startswith("http://10.244.") for url in up), up


def test_the_readings_per_second_panel_shows_the_pods_producing_and_storing(
    prometheus: PrometheusServer,
) -> None:
    produced, consumed, stored, _duplicates = _panel(
        "heartbeat-pipeline.json", "Readings per second"
    )

    def rates() -> list[float]:
        values = [prometheus.query(expr) for expr in (produced, consumed, stored)]
        numbers = [float(v[0]["value"][1]) if v else 0.0 for v in values]
        return numbers if all(n > 0 for n in numbers) else []

    assert eventually(rates, "produced, consumed and stored rates above 0", timeout=120)


def test_the_replicas_up_panel_counts_the_pods_of_each_component(
    prometheus: PrometheusServer,
) -> None:
    (replicas,) = _panel("heartbeat-pipeline.json", "Replicas up")

    def counts() -> dict[str, int]:
        found = {
            s["metric"].get("component", ""): int(float(s["value"][1]))
            for s in prometheus.query(replicas)
        }
        return found if len(found) >= 3 else {}

    assert eventually(counts, "a count per component", timeout=60) == {
        "producer": 1,
        "consumer": 1,
        "operator": 1,
    }
