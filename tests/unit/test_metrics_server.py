"""The /metrics, /healthz and /readyz endpoints every process serves."""

import json
import urllib.error
import urllib.request

import pytest

from heartbeat.metrics import ConsumerMetrics, ProducerMetrics, new_registry
from heartbeat.server import Health, MetricsServer
from heartbeat.validation import Anomaly, Reason


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def served():
    registry = new_registry(process_collectors=False)
    metrics = ConsumerMetrics(registry)
    health = Health(("kafka", "postgres"), liveness_timeout=60)
    server = MetricsServer("127.0.0.1", 0, registry, health).start()
    yield server.port, metrics, health, registry
    server.stop()


def test_readyz_is_503_until_every_dependency_is_ready(served):
    port, _, health, _ = served
    status, body = get(port, "/readyz")
    assert status == 503
    health.set("kafka", True)
    assert get(port, "/readyz")[0] == 503
    health.set("postgres", True)
    status, body = get(port, "/readyz")
    assert status == 200
    assert json.loads(body)["checks"]["postgres"]["ok"] is True
    health.set("postgres", False, "connection refused")
    status, body = get(port, "/readyz")
    assert status == 503
    assert "connection refused" in body


def test_healthz_fails_when_the_loop_stops_turning():
    health = Health((), liveness_timeout=0.05)
    registry = new_registry(process_collectors=False)
    server = MetricsServer("127.0.0.1", 0, registry, health).start()
    try:
        health.tick()
        assert get(server.port, "/healthz")[0] == 200
        import time

        time.sleep(0.1)
        assert get(server.port, "/healthz")[0] == 503
        health.tick()
        assert get(server.port, "/healthz")[0] == 200
    finally:
        server.stop()


def test_metrics_endpoint_exposes_prefixed_counters_with_known_labels_at_zero(served):
    port, metrics, _, registry = served
    metrics.stored.inc(3)
    status, body = get(port, "/metrics")
    assert status == 200
    assert "heartbeat_stored_total 3.0" in body
    for reason in Reason:
        assert registry.get_sample_value("heartbeat_rejected_total", {"reason": reason.value}) == 0
    for kind in Anomaly:
        assert registry.get_sample_value("heartbeat_anomalies_total", {"kind": kind.value}) == 0
    names = {m.name for m in registry.collect()}
    assert all(name.startswith("heartbeat_") for name in names)


def test_unknown_path_is_404(served):
    assert get(served[0], "/nope")[0] == 404


def test_producer_metrics_register_on_their_own_registry():
    registry = new_registry(process_collectors=False)
    metrics = ProducerMetrics(registry)
    metrics.produced.inc()
    assert registry.get_sample_value("heartbeat_produced_total") == 1
    assert (
        registry.get_sample_value(
            "heartbeat_build_info",
            {"version": __import__("heartbeat").__version__, "component": "producer"},
        )
        == 1
    )


def test_the_readme_metrics_table_lists_every_metric_the_producer_and_consumer_serve():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n### Metrics\n", 1)[1].split("\n## ", 1)[0]
    documented = {
        line.split("`")[1].split("{")[0] for line in section.splitlines() if line.startswith("| `")
    }
    served = set()
    for metrics in (ProducerMetrics, ConsumerMetrics):
        registry = new_registry(process_collectors=False)
        metrics(registry)
        for family in registry.collect():
            suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
            served.add(family.name + suffix)
    assert sorted(served - documented) == []
