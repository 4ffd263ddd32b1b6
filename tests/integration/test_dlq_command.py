"""`heartbeat dlq` against the real services: count, list, and a re-drive stored exactly once."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from heartbeat.cli import main
from heartbeat.consumer import next_offsets
from heartbeat.kafka import Record
from heartbeat.store import Store
from heartbeat.validation import Reading, Rejection, judge
from tests.integration.pipeline import Pipeline, unique
from tests.support.polling import wait_for

pytestmark = pytest.mark.integration


def consume_as_a_consumer_would(pipeline: Pipeline, records: list[Record], now: datetime) -> None:
    """Judge records at ``now`` and write them as the consumer does: rows, dead letters, offsets."""
    skew = timedelta(seconds=pipeline.settings.consumer_max_future_skew_seconds)
    readings, sources, rejected = [], [], []
    for record in records:
        verdict = judge(record.value, now=now, max_future_skew=skew)
        if isinstance(verdict, Reading):
            readings.append(verdict)
            sources.append(record)
        else:
            assert isinstance(verdict, Rejection)
            rejected.append((record, verdict))
    with Store(pipeline.conninfo, connect_timeout=2) as store:
        store.write_batch(
            pipeline.settings.kafka_consumer_group,
            readings,
            next_offsets(records),
            sources=sources,
            rejected=rejected,
        )


def reading(customer: int, ts: datetime, heart_rate: int = 70) -> bytes:
    return json.dumps(
        {"customer_id": customer, "timestamp": ts.isoformat(), "heart_rate": heart_rate}
    ).encode()


def test_count_and_list_show_what_the_table_holds(world, capsys):
    now = datetime.now(UTC)
    world.produce(
        [
            (b"1", b"not json"),
            (b"2", b"{also not json"),
            (b"3", reading(3, now + timedelta(hours=1))),
            (b"4", reading(4, now - timedelta(minutes=1))),
        ]
    )
    records = world.topic_records(count=4)
    consume_as_a_consumer_would(world, records, now)
    capsys.readouterr()

    assert main(["dlq", "count"]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["invalid_json", "2", "0", "2"] in lines
    assert ["timestamp_in_future", "1", "0", "1"] in lines
    assert ["(all)", "3", "0", "3"] in lines

    assert main(["dlq", "count", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 3

    assert main(["dlq", "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_source = {row["source"]: row for row in rows}
    topic = world.settings.kafka_topic
    expected = {f"{topic}:{r.partition}:{r.offset}": r for r in records if r.key != b"4"}
    assert set(by_source) == set(expected)
    for source, record in expected.items():
        assert by_source[source]["payload_text"] == record.value.decode()
        assert by_source[source]["consumer_group"] == world.settings.kafka_consumer_group

    assert main(["dlq", "list", "--reason", "invalid_json", "--limit", "1"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 3  # header, rule, one row
    assert "invalid_json" in table[2]

    assert main(["dlq", "list", "--reason", "unprocessable"]) == 0
    assert capsys.readouterr().out.strip() == "no dead letters"


def test_a_re_driven_reading_that_is_now_valid_is_stored_once_and_again_is_a_duplicate(
    world, capsys
):
    # The consumer's clock was ten minutes behind: a reading from a minute ago was
    # refused as in the future. After the fix it is re-driven.
    now = datetime.now(UTC)
    ts = (now - timedelta(minutes=1)).replace(microsecond=0)
    world.produce([(b"8", reading(8, ts, 77)), (b"9", b"not json")])
    records = world.topic_records(count=2)
    consume_as_a_consumer_would(world, records, now - timedelta(minutes=10))
    refused = next(r for r in records if r.key == b"8")
    source = f"{refused.topic}:{refused.partition}:{refused.offset}"
    capsys.readouterr()

    assert main(["dlq", "redrive", "--reason", "timestamp_in_future", "--dry-run"]) == 0
    assert f"would re-drive {source}" in capsys.readouterr().out
    assert len(world.topic_records()) == 2

    assert main(["dlq", "redrive", "--reason", "timestamp_in_future"]) == 0
    assert f"re-drove 1 of 1 dead letters to {world.settings.kafka_topic}" in (
        capsys.readouterr().out
    )
    all_records = world.topic_records()
    assert len(all_records) == 3
    [again] = [
        r
        for r in all_records
        if (r.partition, r.offset) not in {(x.partition, x.offset) for x in records}
    ]
    assert (again.key, again.value) == (refused.key, refused.value)
    assert dict(again.headers)["redriven_from"] == source.encode()

    consumer = world.start_consumer()
    try:
        wait_for(lambda: world.row_count() == 1, 60, "the re-driven reading stored")
        assert world.sql("SELECT customer_id, ts, heart_rate FROM heartbeats") == [(8, ts, 77)]

        # Re-driving by reason again finds nothing pending; naming it sends it again.
        assert main(["dlq", "redrive", "--reason", "timestamp_in_future"]) == 0
        assert "nothing to re-drive" in capsys.readouterr().out
        assert main(["dlq", "redrive", "--source", source]) == 0
        wait_for(
            lambda: consumer.metric("heartbeat_duplicates_total") == 1,
            60,
            "the second re-drive counted as a duplicate",
        )
        assert world.row_count() == 1
    finally:
        assert consumer.stop() == 0
    redriven = world.sql(
        'SELECT redriven_at IS NOT NULL FROM dead_letters WHERE partition = %s AND "offset" = %s',
        (refused.partition, refused.offset),
    )
    assert redriven == [(True,)]


def test_a_dead_letter_whose_payload_was_cut_is_refused_and_nothing_is_sent(world, capsys):
    world.produce([(b"5", b"\xff" * 100_000)])
    [record] = world.topic_records(count=1)
    consume_as_a_consumer_would(world, [record], datetime.now(UTC))
    source = f"{record.topic}:{record.partition}:{record.offset}"
    capsys.readouterr()

    assert main(["dlq", "redrive", "--source", source]) == 1
    err = capsys.readouterr().err
    assert f"refused {source}: payload kept 65536 of 100000 bytes" in err
    assert len(world.topic_records()) == 1
    assert world.sql("SELECT redriven_at FROM dead_letters") == [(None,)]


def test_a_source_that_was_never_dead_lettered_is_named_and_nothing_is_sent(world, capsys):
    assert main(["dlq", "redrive", "--source", f"{world.settings.kafka_topic}:0:12345"]) == 1
    assert f"no dead letter at {world.settings.kafka_topic}:0:12345" in capsys.readouterr().err


def test_dlq_before_the_schema_exists_fails_with_exit_1(postgres_service, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    name = unique("nomig").replace("-", "_")
    with psycopg.connect(postgres_service.conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        monkeypatch.setenv("DATABASE_URL", make_conninfo(postgres_service.conninfo, dbname=name))
        assert main(["dlq", "count"]) == 1
    finally:
        with psycopg.connect(postgres_service.conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
