"""A broker that goes away mid-stream: the consumer waits, reports not-ready, and loses nothing.

Uses a broker of its own (the shared one stays up for the other tests): a local process or
a container, whichever backend the session's services use.
"""

from __future__ import annotations

import pytest

from heartbeat.kafka import ensure_topics
from tests.integration.pipeline import fixed_readings, valid_keys
from tests.support.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def own_broker(kafka_to_stop):
    return kafka_to_stop


def test_broker_stopped_and_restarted_mid_stream_loses_nothing(pipeline, own_broker):
    pipeline.settings = pipeline.with_settings(kafka_bootstrap_servers=own_broker.bootstrap_servers)
    ensure_topics(
        pipeline.settings, [pipeline.settings.kafka_topic, pipeline.settings.kafka_dlq_topic]
    )
    readings = fixed_readings(customers=40, rounds=100, seed=31)  # 4,000 readings
    expected = valid_keys(readings)
    half = len(readings) // 2
    consumer = pipeline.start_consumer()
    pipeline.produce_readings(readings[:half])
    wait_for(
        lambda: pipeline.row_count() == len(valid_keys(readings[:half])), 60, "first half stored"
    )

    own_broker.stop()
    wait_for(
        lambda: not consumer.app.health.is_ready("kafka"),
        60,
        "the consumer reports Kafka not ready",
    )
    own_broker.start()  # same port, same data

    pipeline.produce_readings(readings[half:])
    wait_for(lambda: pipeline.row_count() >= len(expected), 120, "every valid reading stored")
    wait_for(lambda: consumer.app.health.is_ready(), 60, "ready again")
    assert consumer.stop() == 0
    assert pipeline.stored_keys() == expected
    assert sum(pipeline.stored_offsets().values()) == len(readings)
