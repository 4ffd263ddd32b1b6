"""Rebalances that never wait on PostgreSQL, and progress as part of health.

The consumer's rebalance callback does no I/O: new partitions arrive paused and
the main loop seeks them to their stored offsets. Lag comes from the brokers'
end offsets, so it keeps growing while nothing is stored, and a partition with
lag that does not advance makes /readyz fail with the reason.
"""

from __future__ import annotations

import pytest

from tests.integration.pipeline import fixed_readings, valid_keys
from tests.support.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def assigned(consumer) -> float:
    return consumer.metric("heartbeat_assigned_partitions")


def total_lag(consumer, topic: str) -> float:
    return sum(
        consumer.metric("heartbeat_consumer_lag", {"topic": topic, "partition": str(p)})
        for p in range(6)
    )


def test_a_rebalance_completes_while_postgresql_is_down_and_reading_starts_once_it_is_back(
    pipeline, postgres_service
):
    readings = fixed_readings(customers=30, rounds=100, seed=41)  # 3,000 readings
    pipeline.produce_readings(readings)
    postgres_service.stop()
    first = second = None
    try:
        first = pipeline.start_consumer()
        wait_for(lambda: assigned(first) == 6, 60, "the first consumer owns all six partitions")
        second = pipeline.start_consumer()
        # The group hands three partitions to the newcomer although neither consumer can
        # read a stored offset: the rebalance does not wait for PostgreSQL.
        wait_for(
            lambda: assigned(first) + assigned(second) == 6 and assigned(second) > 0,
            60,
            "the partitions shared between both consumers",
        )
        assert pipeline_is_down(first)
        assert pipeline_is_down(second)
    finally:
        postgres_service.start()
    expected = valid_keys(readings)
    wait_for(lambda: pipeline.row_count() >= len(expected), 90, "every valid reading stored")
    wait_for(lambda: sum(pipeline.stored_offsets().values()) == len(readings), 30, "all offsets")
    assert first.stop() == 0
    assert second.stop() == 0
    assert pipeline.stored_keys() == expected
    assert pipeline.row_count() == len(expected)


def pipeline_is_down(consumer) -> bool:
    return not consumer.app.health.is_ready("postgres")


def test_lag_keeps_growing_and_readyz_names_the_stall_while_nothing_can_be_stored(
    pipeline, postgres_service
):
    topic = pipeline.settings.kafka_topic
    readings = fixed_readings(customers=30, rounds=120, seed=43)  # 3,600 readings
    consumer = pipeline.start_consumer(consumer_stall_seconds=4)
    pipeline.produce_readings(readings[:600])
    wait_for(lambda: sum(pipeline.stored_offsets().values()) == 600, 60, "the first part stored")
    wait_for(lambda: total_lag(consumer, topic) == 0, 30, "no lag once stored")
    assert consumer.app.health.is_ready("progress")

    postgres_service.stop()
    try:
        pipeline.produce_readings(readings[600:])
        # Lag comes from the brokers' end offsets, not from what was fetched.
        wait_for(
            lambda: total_lag(consumer, topic) == len(readings) - 600,
            30,
            "the lag of everything produced since",
        )
        wait_for(lambda: not consumer.app.health.is_ready("progress"), 30, "progress not ready")
        _, checks = consumer.app.health.readiness()
        detail = checks["progress"]["detail"]
        assert "have not advanced for 4s" in detail
        assert f"{topic}[" in detail
        assert consumer.metric("heartbeat_consumer_stalled_partitions") == 6
    finally:
        postgres_service.start()

    wait_for(lambda: sum(pipeline.stored_offsets().values()) == len(readings), 90, "all stored")
    wait_for(lambda: consumer.app.health.is_ready(), 30, "ready again, progress included")
    assert consumer.metric("heartbeat_consumer_stalled_partitions") == 0
    wait_for(lambda: total_lag(consumer, topic) == 0, 30, "lag back to 0")
    assert consumer.stop() == 0
    assert pipeline.stored_keys() == valid_keys(readings)


def test_every_partition_reports_when_it_last_advanced(pipeline):
    topic = pipeline.settings.kafka_topic
    consumer = pipeline.start_consumer()
    wait_for(lambda: assigned(consumer) == 6, 60, "all partitions owned")
    wait_for(
        lambda: all(
            consumer.metric(
                "heartbeat_consumer_last_progress_timestamp_seconds",
                {"topic": topic, "partition": str(p)},
            )
            > 0
            for p in range(6)
        ),
        30,
        "a last-progress time for every partition",
    )
    assert consumer.stop() == 0
