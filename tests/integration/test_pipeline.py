"""The pipeline against a real Kafka broker and a real PostgreSQL."""

from __future__ import annotations

import json
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from heartbeat.kafka import read_topic
from heartbeat.validation import Anomaly, Reason, classify
from tests.integration.pipeline import (
    fixed_readings,
    http_get,
    sample,
    scrape,
    terminate,
    valid_keys,
)
from tests.support.polling import wait_for

pytestmark = pytest.mark.integration


def test_valid_readings_are_stored_once_with_their_anomaly_flags(pipeline):
    readings = fixed_readings(customers=40, rounds=50, seed=11)  # 2,000 readings
    expected = valid_keys(readings)
    consumer = pipeline.start_consumer()
    pipeline.produce_readings(readings)
    wait_for(lambda: pipeline.row_count() == len(expected), 60, "every valid reading stored")
    assert consumer.stop() == 0

    assert pipeline.stored_keys() == expected
    mismatched = pipeline.sql(
        "SELECT count(*) FROM heartbeats WHERE anomaly IS DISTINCT FROM "
        "(CASE WHEN heart_rate < 45 THEN 'low' WHEN heart_rate > 180 THEN 'high' END)"
    )[0][0]
    assert mismatched == 0
    flagged = Counter(
        classify(r.heart_rate) for r in readings if (r.customer_id, r.timestamp) in expected
    )
    assert flagged[Anomaly.LOW] + flagged[Anomaly.HIGH] > 0
    assert consumer.metric("heartbeat_stored_total") == len(expected)
    assert consumer.metric("heartbeat_consumed_total") == len(readings)
    for kind in Anomaly:
        assert consumer.metric("heartbeat_anomalies_total", {"kind": kind.value}) == flagged[kind]
    rejected = consumer.metric("heartbeat_rejected_total", {"reason": "heart_rate_out_of_range"})
    assert rejected == len(readings) - len(expected) > 0
    assert consumer.metric("heartbeat_event_to_stored_seconds_count") == len(expected)
    assert consumer.metric("heartbeat_db_write_seconds_count") >= 1


def by_reason_of(dead_letters):
    return {dict(r.headers)["reason"].decode(): r for r in dead_letters}


def test_every_reject_reason_lands_in_the_dead_letter_topic_with_its_reason(pipeline):
    now = datetime.now(UTC)
    good = {"customer_id": 5, "timestamp": now.isoformat(), "heart_rate": 70}

    def variant(**fields):
        body = good | fields
        return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()

    bad = {
        Reason.EMPTY_PAYLOAD: None,
        Reason.INVALID_UTF8: b"\xc3\x28",
        Reason.INVALID_JSON: b"{oops",
        Reason.NOT_AN_OBJECT: b"[1,2,3]",
        Reason.MISSING_FIELD: variant(heart_rate=...),
        Reason.INVALID_TYPE: variant(heart_rate="fast"),
        Reason.INVALID_CUSTOMER_ID: variant(customer_id=0),
        Reason.HEART_RATE_OUT_OF_RANGE: variant(heart_rate=250),
        Reason.INVALID_TIMESTAMP: variant(timestamp="soon"),
        Reason.TIMESTAMP_WITHOUT_TIMEZONE: variant(timestamp="2026-01-01T10:00:00"),
        Reason.TIMESTAMP_IN_FUTURE: variant(timestamp=(now + timedelta(hours=2)).isoformat()),
    }
    # The same instant as `good` with another heart rate: sent once `good` is stored.
    bad[Reason.CONFLICTING_READING] = variant(heart_rate=71)
    # Every reason a message can be given; `unprocessable` marks a defect in validation
    # itself, which no message can provoke on purpose (unit-tested with a broken one).
    assert set(bad) == set(Reason) - {Reason.UNPROCESSABLE}, "every reason is exercised"
    messages = [
        (f"k-{reason.value}".encode(), value)
        for reason, value in bad.items()
        if reason is not Reason.CONFLICTING_READING
    ]
    messages.append((b"5", variant()))
    consumer = pipeline.start_consumer()
    pipeline.produce(messages)
    wait_for(lambda: pipeline.row_count() == 1, 30, "the one valid reading stored")
    pipeline.produce([(b"k-conflicting_reading", bad[Reason.CONFLICTING_READING])])
    messages.append((b"k-conflicting_reading", bad[Reason.CONFLICTING_READING]))

    dead = list(
        read_topic(
            pipeline.settings,
            pipeline.settings.kafka_dlq_topic,
            from_beginning=True,
            max_messages=len(bad),
            idle_timeout=60,
        )
    )
    # Every rejected message is also kept, once, in PostgreSQL.
    wait_for(
        lambda: pipeline.sql("SELECT count(*) FROM dead_letters")[0][0] == len(bad),
        30,
        "every rejected message in the dead_letters table",
    )
    assert consumer.stop() == 0
    assert pipeline.sql("SELECT heart_rate FROM heartbeats") == [(70,)]
    kept = dict(pipeline.sql("SELECT reason, count(*) FROM dead_letters GROUP BY reason"))
    assert kept == {reason.value: 1 for reason in bad}
    conflict = dict(by_reason_of(dead)["conflicting_reading"].headers)["error"].decode()
    assert "already stored with heart_rate 70" in conflict

    by_reason = by_reason_of(dead)
    assert set(by_reason) == {reason.value for reason in bad}
    sources = {
        r.key: (r.partition, r.offset)
        for r in read_topic(
            pipeline.settings,
            pipeline.settings.kafka_topic,
            from_beginning=True,
            max_messages=len(messages),
            idle_timeout=30,
        )
    }
    for reason, value in bad.items():
        record = by_reason[reason.value]
        headers = dict(record.headers)
        assert record.value == value, reason
        assert record.key == f"k-{reason.value}".encode()
        assert headers["source_topic"].decode() == pipeline.settings.kafka_topic
        source = (int(headers["source_partition"]), int(headers["source_offset"]))
        assert source == sources[record.key]
        assert headers["error"]
        assert consumer.metric("heartbeat_rejected_total", {"reason": reason.value}) == 1


def test_duplicates_are_stored_once_within_a_batch_across_batches_and_on_redelivery(pipeline):
    readings = fixed_readings(customers=5, rounds=4, seed=12)
    valid = [r for r in readings if (r.customer_id, r.timestamp) in valid_keys(readings)]
    consumer = pipeline.start_consumer()
    pipeline.produce_readings(valid + valid)  # twice in what is likely one batch
    wait_for(
        lambda: consumer.metric("heartbeat_consumed_total") == 2 * len(valid),
        30,
        "both copies read",
    )
    pipeline.produce_readings(valid)  # a later batch
    wait_for(
        lambda: consumer.metric("heartbeat_consumed_total") == 3 * len(valid), 30, "third copy read"
    )
    assert consumer.stop() == 0
    assert pipeline.row_count() == len(valid)
    assert consumer.metric("heartbeat_stored_total") == len(valid)
    assert consumer.metric("heartbeat_duplicates_total") == 2 * len(valid)

    # A redelivery: rewind the stored offsets as if the commit had been lost.
    pipeline.sql("UPDATE consumer_offsets SET next_offset = 0")
    again = pipeline.start_consumer()
    wait_for(
        lambda: again.metric("heartbeat_consumed_total") == 3 * len(valid), 30, "everything re-read"
    )
    assert again.stop() == 0
    assert pipeline.row_count() == len(valid)
    assert again.metric("heartbeat_stored_total") == 0


def test_consumer_resumes_from_the_offsets_stored_in_postgresql(pipeline):
    readings = fixed_readings(customers=1, rounds=30, seed=13)  # one key: one partition
    valid = [r for r in readings if (r.customer_id, r.timestamp) in valid_keys(readings)]
    pipeline.produce_readings(valid)
    partition = wait_for(
        lambda: next(
            iter(
                r.partition
                for r in read_topic(
                    pipeline.settings,
                    pipeline.settings.kafka_topic,
                    from_beginning=True,
                    max_messages=1,
                    idle_timeout=10,
                )
            ),
            None,
        ),
        30,
        "the partition of customer 1",
    )
    pipeline.sql(
        "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset)"
        " VALUES (%s, %s, %s, 10)",
        (pipeline.settings.kafka_consumer_group, pipeline.settings.kafka_topic, partition),
    )
    consumer = pipeline.start_consumer()
    wait_for(
        lambda: pipeline.stored_offsets().get(partition) == len(valid),
        30,
        "the partition read to its end",
    )
    assert consumer.stop() == 0
    assert pipeline.stored_keys() == {(r.customer_id, r.timestamp) for r in valid[10:]}


def test_consumer_killed_with_sigkill_mid_stream_stores_every_valid_reading_exactly_once(
    pipeline, tmp_path
):
    readings = fixed_readings(customers=100, rounds=150, seed=14)  # 15,000 readings
    expected = valid_keys(readings)
    pipeline.produce_readings(readings)
    log = tmp_path / "consumer.log"
    first = pipeline.spawn(
        "consume", env={"METRICS_PORT": "0", "CONSUMER_BATCH_MAX_MESSAGES": "300"}, log=log
    )
    try:
        wait_for(lambda: pipeline.row_count() > 1000, 60, "the first batches stored")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert first.returncode == -signal.SIGKILL
    stored_at_kill = pipeline.row_count()
    assert stored_at_kill < len(expected), "the kill happened mid-stream"

    second = pipeline.spawn("consume", env={"METRICS_PORT": "0"}, log=log)
    try:
        wait_for(lambda: pipeline.row_count() >= len(expected), 90, "every valid reading stored")
        ends = wait_for(
            lambda: sum(pipeline.stored_offsets().values()) == len(readings),
            30,
            "offsets at the end",
        )
        assert ends
    finally:
        assert terminate(second) == 0
    assert pipeline.stored_keys() == expected
    assert pipeline.row_count() == len(expected)


def test_consumers_joining_and_leaving_mid_stream_hand_partitions_over_without_loss(
    pipeline, tmp_path
):
    readings = fixed_readings(customers=120, rounds=100, seed=15)  # 12,000 readings
    expected = valid_keys(readings)
    third = len(readings) // 3
    ports = (pipeline.free_port(), pipeline.free_port())

    def spawn(port: int):
        env = {"METRICS_PORT": str(port), "CONSUMER_BATCH_MAX_MESSAGES": "200"}
        return pipeline.spawn("consume", env=env, log=tmp_path / f"consumer-{port}.log")

    def assigned(port: int) -> float:
        return sample(scrape(port), "heartbeat_assigned_partitions")

    consumers = [spawn(ports[0])]
    try:
        wait_for(lambda: http_get(ports[0], "/readyz") == 200, 60, "the first consumer ready")
        wait_for(lambda: assigned(ports[0]) == 6.0, 60, "the first consumer owning all six")
        pipeline.produce_readings(readings[:third])
        wait_for(lambda: pipeline.row_count() > 500, 60, "storing under way")

        # A second member joins mid-stream: the partitions are split three and three.
        consumers.append(spawn(ports[1]))
        pipeline.produce_readings(readings[third : 2 * third])
        wait_for(lambda: [assigned(p) for p in ports] == [3.0, 3.0], 60, "the split")

        # The first leaves mid-stream: the second takes everything over.
        assert terminate(consumers[0]) == 0
        pipeline.produce_readings(readings[2 * third :])
        wait_for(lambda: assigned(ports[1]) == 6.0, 60, "the takeover")
        wait_for(lambda: pipeline.row_count() >= len(expected), 90, "every valid reading stored")
        wait_for(
            lambda: sum(pipeline.stored_offsets().values()) == len(readings),
            30,
            "offsets at the end",
        )
    finally:
        for process in consumers:
            if process.poll() is None:
                assert terminate(process) == 0
    assert pipeline.stored_keys() == expected
    assert pipeline.row_count() == len(expected)


def test_sigterm_exits_0_with_offsets_committed_to_postgresql_and_kafka(pipeline, tmp_path):
    readings = fixed_readings(customers=20, rounds=50, seed=16)
    pipeline.produce_readings(readings)
    consumer = pipeline.spawn("consume", env={"METRICS_PORT": "0"}, log=tmp_path / "consumer.log")
    wait_for(
        lambda: sum(pipeline.stored_offsets().values()) == len(readings), 60, "offsets at the end"
    )
    assert terminate(consumer, timeout=30) == 0
    assert pipeline.row_count() == len(valid_keys(readings))
    committed = pipeline.kafka_committed_offsets()
    assert committed == pipeline.stored_offsets()


def test_postgresql_stopped_and_restarted_mid_stream_loses_nothing(pipeline, postgres_service):
    readings = fixed_readings(customers=50, rounds=120, seed=17)  # 6,000 readings
    expected = valid_keys(readings)
    consumer = pipeline.start_consumer()
    pipeline.produce_readings(readings[:2000])
    wait_for(lambda: consumer.metric("heartbeat_stored_total") > 0, 30, "storing under way")
    postgres_service.stop()
    try:
        pipeline.produce_readings(readings[2000:])
        wait_for(lambda: not consumer.app.health.is_ready(), 30, "the consumer reports not-ready")
        wait_for(
            lambda: (
                consumer.metric("heartbeat_dependency_retries_total", {"dependency": "postgres"})
                >= 2
            ),
            30,
            "retries with backoff",
        )
    finally:
        postgres_service.start()
    wait_for(lambda: consumer.app.health.is_ready(), 60, "ready again")
    wait_for(lambda: pipeline.row_count() >= len(expected), 90, "every valid reading stored")
    wait_for(lambda: sum(pipeline.stored_offsets().values()) == len(readings), 30, "all offsets")
    assert consumer.stop() == 0
    assert pipeline.stored_keys() == expected
    assert consumer.metric("heartbeat_stored_total") == len(expected)
    # Every out-of-range reading reached the dead-letter topic, once.
    invalid = [r.to_json() for r in readings if (r.customer_id, r.timestamp) not in expected]
    dead = pipeline.topic_records(pipeline.settings.kafka_dlq_topic, count=len(invalid))
    assert sorted(r.value for r in dead) == sorted(invalid)
    assert consumer.metric(
        "heartbeat_rejected_total", {"reason": "heart_rate_out_of_range"}
    ) == len(invalid)


def test_sigterm_mid_stream_commits_rows_and_offsets_together_and_a_restart_finishes(
    pipeline, tmp_path
):
    readings = fixed_readings(customers=100, rounds=150, seed=18)  # 15,000 readings
    expected = valid_keys(readings)
    pipeline.produce_readings(readings)
    log = tmp_path / "consumer.log"
    env = {"METRICS_PORT": "0", "CONSUMER_BATCH_MAX_MESSAGES": "300"}
    first = pipeline.spawn("consume", env=env, log=log)
    wait_for(lambda: pipeline.row_count() > 1000, 60, "storing under way")
    assert terminate(first, timeout=30) == 0
    offsets = pipeline.stored_offsets()
    assert sum(offsets.values()) < len(readings), "stopped mid-stream"
    assert pipeline.kafka_committed_offsets() == offsets

    # What is stored is exactly the valid readings before each partition's stored offset.
    records = pipeline.topic_records(count=len(readings))
    by_value = {r.to_json(): (r.customer_id, r.timestamp) for r in readings}
    before = {
        by_value[record.value]
        for record in records
        if record.offset < offsets.get(record.partition, 0)
    }
    assert pipeline.stored_keys() == before & expected

    second = pipeline.spawn("consume", env={"METRICS_PORT": "0"}, log=log)
    try:
        wait_for(lambda: sum(pipeline.stored_offsets().values()) == len(readings), 90, "the end")
    finally:
        assert terminate(second) == 0
    assert pipeline.stored_keys() == expected


def test_unreachable_kafka_is_retried_and_reported_not_ready_until_stopped(pipeline, tmp_path):
    port = pipeline.free_port()
    consumer = pipeline.spawn(
        "consume",
        env={
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{pipeline.free_port()}",
            "METRICS_PORT": str(port),
        },
        log=tmp_path / "consumer.log",
    )
    try:
        wait_for(lambda: http_get(port, "/healthz") == 200, 30, "the consumer serving")
        assert http_get(port, "/readyz") == 503
        wait_for(
            lambda: (
                sample(scrape(port), 'heartbeat_dependency_retries_total{dependency="kafka"}') >= 2
            ),
            60,
            "retries with backoff",
        )
        assert http_get(port, "/readyz") == 503
    finally:
        assert terminate(consumer) == 0
