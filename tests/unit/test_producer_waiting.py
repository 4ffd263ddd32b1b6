"""A producer waiting for Kafka at start stays alive (``/healthz``) and not ready
(``/readyz``), however long it waits: only the wait shows, never a stalled loop."""

from __future__ import annotations

import time

from heartbeat import producer
from heartbeat.errors import KafkaUnavailable
from heartbeat.metrics import ProducerMetrics, new_registry
from heartbeat.server import Health
from heartbeat.settings import load_settings

LIVENESS_TIMEOUT = 0.4
ATTEMPTS = 6


def test_waiting_for_kafka_at_start_outlasts_the_liveness_timeout_alive_and_not_ready(
    monkeypatch,
):
    health = Health(("kafka",), LIVENESS_TIMEOUT)
    seen: list[tuple[bool, bool]] = []  # (alive, ready) at each attempt
    started = time.monotonic()

    def unreachable(*_: object) -> None:
        seen.append((health.liveness()[0], health.is_ready()))
        if len(seen) == ATTEMPTS:
            app.request_stop()
        raise KafkaUnavailable("cannot list topics: Local: Broker transport failure")

    monkeypatch.setattr(producer, "ensure_topics", unreachable)
    # Backoff from 0.2 s up to 0.6 s: the later waits alone exceed the liveness timeout.
    settings = load_settings(retry_initial_seconds=0.2, retry_max_seconds=0.6)
    app = producer.ProducerApp(settings, metrics=ProducerMetrics(new_registry()), health=health)

    assert app.run() == 0  # stopped while waiting: nothing was produced
    assert time.monotonic() - started > 2 * LIVENESS_TIMEOUT
    assert len(seen) == ATTEMPTS
    assert seen == [(True, False)] * ATTEMPTS
    assert health.liveness()[0]
    ready, checks = health.readiness()
    assert not ready
    assert "Broker transport failure" in str(checks["kafka"]["detail"])
