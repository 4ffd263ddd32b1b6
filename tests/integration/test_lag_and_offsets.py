"""`heartbeat lag` and `heartbeat offsets reset` against the real Kafka and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from heartbeat.cli import main
from heartbeat.kafka import read_topic
from tests.integration.pipeline import Pipeline, fixed_readings, valid_keys
from tests.support.polling import wait_for

pytestmark = pytest.mark.integration


def valid_readings(customers: int, rounds: int, seed: int, start: datetime | None = None) -> list:
    readings = fixed_readings(customers=customers, rounds=rounds, seed=seed, start=start)
    keys = valid_keys(readings)
    return [r for r in readings if (r.customer_id, r.timestamp) in keys]


def per_partition(pipeline: Pipeline, count: int) -> dict[int, list]:
    """The topic's records by partition, in offset order (all ``count`` of them)."""
    records = pipeline.topic_records(count=count)
    assert len(records) == count
    found: dict[int, list] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        found.setdefault(record.partition, []).append(record)
    return found


def run_json(capsys, *argv: str) -> dict:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def consume_everything(pipeline: Pipeline, expected: int) -> None:
    consumer = pipeline.start_consumer()
    wait_for(lambda: consumer.metric("heartbeat_consumed_total") >= expected, 60, "everything read")
    assert consumer.stop() == 0


def test_lag_shows_each_partitions_end_stored_offset_lag_and_last_write(world, capsys):
    readings = valid_readings(customers=30, rounds=4, seed=41)
    world.produce_readings(readings)
    records = per_partition(world, len(readings))
    ends = {p: len(rs) for p, rs in records.items()}
    stored_partition, unstored_partition = sorted(ends)[:2]
    before = datetime.now(UTC)
    world.sql(
        "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset)"
        " VALUES (%s, %s, %s, 1)",
        (world.settings.kafka_consumer_group, world.settings.kafka_topic, stored_partition),
    )

    report = run_json(capsys, "lag")

    assert report["group"] == world.settings.kafka_consumer_group
    rows = {row["partition"]: row for row in report["partitions"]}
    assert set(rows) == set(range(6))
    for partition, row in rows.items():
        assert row["end_offset"] == ends.get(partition, 0)
    stored = rows[stored_partition]
    assert (stored["stored_offset"], stored["lag"]) == (1, ends[stored_partition] - 1)
    assert datetime.fromisoformat(stored["last_write"]) >= before - timedelta(seconds=5)
    # No stored position: the consumer starts at the earliest offset, so all of it is lag.
    unstored = rows[unstored_partition]
    assert (unstored["stored_offset"], unstored["last_write"]) == (None, None)
    assert unstored["lag"] == ends[unstored_partition]
    assert report["total_lag"] == len(readings) - 1

    capsys.readouterr()
    assert main(["lag"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == (
        f"group {world.settings.kafka_consumer_group}, topic {world.settings.kafka_topic}"
    )
    assert table[-1].split() == ["(all)", str(len(readings)), str(len(readings) - 1)]


def test_lag_after_the_consumer_drains_the_topic_is_zero(world, capsys):
    readings = valid_readings(customers=12, rounds=3, seed=42)
    world.produce_readings(readings)
    consume_everything(world, len(readings))
    report = run_json(capsys, "lag")
    assert report["total_lag"] == 0
    for row in report["partitions"]:  # a partition nothing went to has nothing stored
        assert row["stored_offset"] == (row["end_offset"] or None)


def test_reset_is_refused_while_the_group_has_members_and_changes_nothing(world, capsys):
    readings = valid_readings(customers=12, rounds=3, seed=43)
    world.produce_readings(readings)
    consumer = world.start_consumer()
    try:
        wait_for(lambda: sum(world.stored_offsets().values()) == len(readings), 60, "all stored")
        before = world.stored_offsets()
        capsys.readouterr()
        assert main(["offsets", "reset", "--to-earliest"]) == 1
        err = capsys.readouterr().err
        assert "active member" in err
        assert "stop its consumers" in err
        assert "Traceback" not in err
        assert world.stored_offsets() == before
    finally:
        assert consumer.stop() == 0


def test_reset_to_earliest_makes_the_consumer_read_everything_again(world, capsys):
    readings = valid_readings(customers=12, rounds=3, seed=44)
    world.produce_readings(readings)
    consume_everything(world, len(readings))
    # The reset stores a position for every partition, 0 for one nothing went to.
    drained = {p: world.stored_offsets().get(p, 0) for p in range(6)}

    dry = run_json(capsys, "offsets", "reset", "--to-earliest", "--dry-run")
    assert dry["dry_run"] is True
    planned = {row["partition"]: row for row in dry["partitions"]}
    assert {p: row["current_offset"] or 0 for p, row in planned.items()} == drained
    assert all(row["new_offset"] == 0 for row in dry["partitions"])
    assert world.stored_offsets() == {p: o for p, o in drained.items() if o}  # nothing written

    done = run_json(capsys, "offsets", "reset", "--to-earliest")
    assert done["dry_run"] is False
    assert set(world.stored_offsets().values()) == {0}
    assert set(world.kafka_committed_offsets().values()) <= {0}

    world.sql("TRUNCATE heartbeats")
    consume_everything(world, len(readings))
    assert world.stored_keys() == {(r.customer_id, r.timestamp) for r in readings}
    assert world.stored_offsets() == drained


def test_reset_to_a_datetime_makes_the_consumer_read_from_the_first_message_at_that_time(
    world, capsys
):
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    early = valid_readings(customers=12, rounds=3, seed=45, start=start)
    late = valid_readings(customers=12, rounds=3, seed=46, start=start + timedelta(hours=1))
    world.produce_readings(early)
    time.sleep(1.5)  # the brokers stamp messages with the producer's clock, to the millisecond
    boundary = datetime.now(UTC)
    time.sleep(1.5)
    world.produce_readings(late)
    total = len(early) + len(late)
    consume_everything(world, total)
    # The reset stores a position for every partition, 0 for one nothing went to.
    drained = {p: world.stored_offsets().get(p, 0) for p in range(6)}
    early_counts = Counter(
        r.partition
        for r in read_topic(
            world.settings,
            world.settings.kafka_topic,
            from_beginning=True,
            max_messages=total,
            idle_timeout=10,
        )
        if r.timestamp_ms is not None and r.timestamp_ms < boundary.timestamp() * 1000
    )
    assert sum(early_counts.values()) == len(early)

    report = run_json(capsys, "offsets", "reset", "--to-datetime", boundary.isoformat())
    expected = {p: early_counts.get(p, 0) for p in range(6)}
    assert {row["partition"]: row["new_offset"] for row in report["partitions"]} == expected
    assert world.stored_offsets() == expected
    committed = world.kafka_committed_offsets()
    assert all(committed.get(p, 0) == o for p, o in expected.items())

    world.sql("TRUNCATE heartbeats")
    consume_everything(world, len(late))
    assert world.stored_keys() == {(r.customer_id, r.timestamp) for r in late}
    assert world.stored_offsets() == drained


def test_reset_to_latest_skips_what_is_unread_and_a_time_past_the_end_is_the_end(world, capsys):
    readings = valid_readings(customers=12, rounds=2, seed=47)
    world.produce_readings(readings)
    ends = {p: len(rs) for p, rs in per_partition(world, len(readings)).items()}
    expected = {p: ends.get(p, 0) for p in range(6)}

    run_json(capsys, "offsets", "reset", "--to-latest")
    assert world.stored_offsets() == expected
    assert run_json(capsys, "lag")["total_lag"] == 0

    world.sql("UPDATE consumer_offsets SET next_offset = 0")
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    run_json(capsys, "offsets", "reset", "--to-datetime", future)
    assert world.stored_offsets() == expected

    consumer = world.start_consumer()
    try:
        wait_for(lambda: at_the_end(consumer, world), 60, "all 6 partitions positioned at the end")
        assert consumer.metric("heartbeat_consumed_total") == 0
        # What is sent after the reset is read, and it alone.
        after = valid_readings(customers=3, rounds=1, seed=48)[0]
        world.produce_readings([after])
        wait_for(world.row_count, 60, "the reading sent after the reset stored")
        assert consumer.metric("heartbeat_consumed_total") == 1
    finally:
        assert consumer.stop() == 0
    assert world.stored_keys() == {(after.customer_id, after.timestamp)}


def at_the_end(consumer, world: Pipeline) -> bool:
    """Every partition assigned and sought to its stored position, with no lag from there."""
    if consumer.metric("heartbeat_assigned_partitions") != 6:
        return False
    topic = world.settings.kafka_topic
    lags = [
        consumer.registry.get_sample_value(
            "heartbeat_consumer_lag", {"topic": topic, "partition": str(p)}
        )
        for p in range(6)
    ]
    return lags == [0.0] * 6  # None until the partition is positioned and its ends read


def test_reset_of_a_topic_that_does_not_exist_is_one_line_and_exit_1(world, capsys):
    capsys.readouterr()
    assert main(["offsets", "reset", "--to-earliest", "--topic", "no-such-topic-here"]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err
    assert "Traceback" not in err
    assert world.stored_offsets() == {}
