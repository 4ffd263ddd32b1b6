"""The pipeline run as containers of the built image against real Kafka and PostgreSQL.

The consumer and the producer are `docker run`s of the image with a read-only root, as the
chart runs them; the services are the session's (containers on a user network, or local
processes reached over the host's network).
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from heartbeat.validation import VALID_MAX_BPM, VALID_MIN_BPM
from tests.containers.apps import AppContainer, AppNetwork
from tests.containers.conftest import REPORT
from tests.integration.pipeline import http_get
from tests.support.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STOP_BUDGET_SECONDS = 10
BAD_MESSAGES = [
    (b"bad-1", b"{not json"),
    (b"bad-2", b"[1, 2, 3]"),
    (b"bad-3", json.dumps({"customer_id": 7, "heart_rate": 70}).encode()),
    (
        b"bad-4",
        json.dumps(
            {"customer_id": 7, "timestamp": "2026-01-01T10:00:00+00:00", "heart_rate": 300}
        ).encode(),
    ),
    (b"bad-5", None),
]


def stored_key(value: bytes | None) -> tuple[int, datetime] | None:
    """The (customer, instant) a message would be stored under, or None if it is rejected."""
    if value is None or value in {v for _, v in BAD_MESSAGES}:
        return None
    reading = json.loads(value)  # the producer's readings are well formed
    if not VALID_MIN_BPM <= reading["heart_rate"] <= VALID_MAX_BPM:
        return None
    return reading["customer_id"], datetime.fromisoformat(reading["timestamp"])


@pytest.fixture
def containers(docker_cli, app_image):
    started: list[AppContainer] = []

    def start(network: AppNetwork, env: dict[str, str], *args: str) -> AppContainer:
        container = AppContainer(docker_cli, app_image)
        started.append(container)
        return container.start(network, env, *args)

    yield start
    for container in started:
        container.remove()


def test_containers_store_every_valid_reading_once_dead_letter_the_bad_and_stop_on_sigterm(
    pipeline, kafka_service, postgres_service, containers
):
    network = AppNetwork.for_services(kafka_service, postgres_service, pipeline.conninfo)
    env = {k: v for k, v in pipeline.env.items() if not k.startswith("PG")}
    consumer = containers(network, env, "consume")
    try:
        wait_for(lambda: http_get(consumer.metrics_port, "/readyz") == 200, 60, "consumer ready")
    except AssertionError:
        pytest.fail(f"the consumer container never got ready:\n{consumer.logs()}")

    pipeline.produce(BAD_MESSAGES)
    producer = containers(
        network, env, "produce", "--customers", "30", "--seed", "5", "--rate", "400"
    )
    wait_for(lambda: http_get(producer.metrics_port, "/readyz") == 200, 60, "producer ready")
    wait_for(lambda: pipeline.row_count() >= 1500, 90, "readings stored while producing")

    producer_took, code = producer.stop(STOP_BUDGET_SECONDS)
    assert code == 0, f"the producer exited {code} on SIGTERM:\n{producer.logs()}"
    assert producer_took < STOP_BUDGET_SECONDS

    records = pipeline.topic_records()
    keys = [stored_key(record.value) for record in records]
    expected = {key for key in keys if key is not None}
    rejected = sorted(r.value or b"" for r, key in zip(records, keys, strict=True) if key is None)
    assert len(rejected) > len(BAD_MESSAGES), "the generator sends a few invalid readings too"
    wait_for(
        lambda: sum(pipeline.stored_offsets().values()) == len(records),
        90,
        "every message accounted for in PostgreSQL",
    )
    assert pipeline.row_count() == len(expected), "stored exactly once"
    assert pipeline.stored_keys() == expected
    dead = pipeline.topic_records(pipeline.settings.kafka_dlq_topic, count=len(rejected))
    assert sorted(r.value or b"" for r in dead) == rejected
    assert all(dict(r.headers).get("reason") for r in dead)

    assert http_get(consumer.metrics_port, "/readyz") == 200
    consumer_took, code = consumer.stop(STOP_BUDGET_SECONDS)
    assert code == 0, f"the consumer exited {code} on SIGTERM:\n{consumer.logs()}"
    assert consumer_took < STOP_BUDGET_SECONDS
    REPORT.append(
        f"pipeline in containers ({' '.join(network.options)}): {len(records)} messages,"
        f" {len(expected)} stored once, {len(rejected)} dead-lettered; docker stop took"
        f" {producer_took:.1f} s (producer) and {consumer_took:.1f} s (consumer), exit 0"
    )
