"""The operations commands against the real services: migrate, produce, stats, tail."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import ROUND_HALF_UP, Decimal

import psycopg
import pytest

from heartbeat.cli import main
from heartbeat.kafka import ensure_topics, read_topic
from heartbeat.metrics import ProducerMetrics, new_registry
from heartbeat.producer import ProducerApp
from heartbeat.server import Health
from tests.integration.pipeline import ROOT, fixed_readings, valid_keys
from tests.support.polling import wait_for

pytestmark = pytest.mark.integration


def tables(conninfo: str) -> set[str]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return {name for (name,) in rows if not name.startswith("_yoyo") and name != "yoyo_lock"}


def test_migrate_applies_lists_and_rolls_back_the_last_steps(empty_database, capsys):
    everything = {
        "heartbeats",
        "heartbeats_default",
        "consumer_offsets",
        "dead_letters",
        "customer_last_seen",
        "heartbeat_minutes",
        "heartbeat_minutes_default",
        "heartbeat_minutes_pending",
        "heartbeat_minutes_live",
        "heartbeat_fleet_minutes",
        "heartbeat_fleet_minutes_live",
        "heartbeat_hours",
        "heartbeat_hours_default",
        "heartbeat_hours_pending",
        "heartbeat_hours_stale",
        "heartbeat_hours_live",
    }
    later = [
        "0002.consumer-offsets",
        "0003.dead-letters",
        "0004.customer-last-seen",
        "0005.heartbeats-by-time",
        "0006.heartbeat-minutes",
        "0007.heartbeat-fleet-minutes",
        "0008.heartbeat-hours",
    ]
    assert main(["migrate", "status"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"pending  {m}" for m in ["0001.heartbeats", *later]
    ]
    assert main(["migrate"]) == 0
    assert tables(empty_database) == everything
    assert main(["migrate"]) == 0
    assert "up to date" in capsys.readouterr().out

    assert main(["migrate", "rollback", "--steps", str(len(later)), "--yes"]) == 0
    assert tables(empty_database) == {"heartbeats"}
    capsys.readouterr()
    assert main(["migrate", "status"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "applied  0001.heartbeats",
        *(f"pending  {m}" for m in later),
    ]
    assert main(["migrate", "rollback", "--steps", "1", "--yes"]) == 0
    assert tables(empty_database) == set()
    assert main(["migrate"]) == 0
    assert tables(empty_database) == everything


def test_schema_refuses_an_out_of_range_heart_rate_and_a_wrong_flag(empty_database):
    assert main(["migrate"]) == 0
    with psycopg.connect(empty_database) as conn:
        for rate, flag in ((250, None), (70, "low"), (40, None)):
            with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
                conn.execute(
                    "INSERT INTO heartbeats (customer_id, ts, heart_rate, anomaly)"
                    " VALUES (1, now(), %s, %s)",
                    (rate, flag),
                )


def test_unreachable_database_fails_migrate_with_exit_1(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "host=127.0.0.1 port=1 dbname=x connect_timeout=1")
    assert main(["migrate"]) == 1


def test_produce_sends_the_count_it_was_asked_for_and_exits_0(pipeline):
    env = {"METRICS_PORT": "0"}
    process = pipeline.spawn(
        "produce", "--count", "300", "--rate", "0", "--customers", "30", "--seed", "4", env=env
    )
    assert process.wait(60) == 0
    records = list(
        read_topic(
            pipeline.settings,
            pipeline.settings.kafka_topic,
            from_beginning=True,
            max_messages=400,
            idle_timeout=5,
        )
    )
    assert len(records) == 300
    keys = {r.key for r in records}
    assert keys == {str(c).encode() for c in range(1, 31)}
    for record in records:
        body = json.loads(record.value)
        assert str(body["customer_id"]).encode() == record.key


def test_produce_flushes_and_exits_0_on_sigterm(pipeline, tmp_path):
    process = pipeline.spawn(
        "produce", "--rate", "200", env={"METRICS_PORT": "0"}, log=tmp_path / "p.log"
    )
    wait_for(lambda: "producing to" in (tmp_path / "p.log").read_text(), 30, "the producer running")
    time.sleep(2)  # a few hundred readings in flight
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    log = (tmp_path / "p.log").read_text()
    assert "undelivered 0" in log
    assert "failed 0" in log
    sent = int(log.split("sent ")[-1].split(" messages")[0])
    records = list(
        read_topic(
            pipeline.settings,
            pipeline.settings.kafka_topic,
            from_beginning=True,
            max_messages=None,
            idle_timeout=5,
        )
    )
    assert len(records) == sent > 0


def test_produce_counts_undelivered_readings_and_exits_non_zero(pipeline):
    registry = new_registry(process_collectors=False)
    metrics = ProducerMetrics(registry)
    settings = pipeline.with_settings(producer_count=5, producer_rate=0)
    ensure_topics(settings, [settings.kafka_topic])
    # The topic exists, but the producer's own connection goes nowhere.
    app = ProducerApp(
        settings,
        metrics=metrics,
        health=Health(("kafka",), 60),
        kafka_extra={
            "bootstrap.servers": f"127.0.0.1:{pipeline.free_port()}",
            "message.timeout.ms": 2000,
        },
    )
    assert app.run() == 1
    assert registry.get_sample_value("heartbeat_produce_errors_total") == 5
    assert registry.get_sample_value("heartbeat_produced_total") == 0


def test_stats_reports_counts_and_per_customer_figures_as_json(pipeline, monkeypatch, capsys):
    readings = fixed_readings(customers=3, rounds=40, seed=21)
    expected = valid_keys(readings)
    consumer = pipeline.start_consumer()
    pipeline.produce_readings(readings)
    wait_for(lambda: pipeline.row_count() == len(expected), 30, "readings stored")
    consumer.stop()
    monkeypatch.setenv("DATABASE_URL", pipeline.conninfo)
    assert main(["stats", "--json", "--window", "7200"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["totals"]["readings"] == len(expected)
    assert report["totals"]["customers"] == 3
    per_customer = {c["customer_id"]: c for c in report["customers"]}
    for customer, row in per_customer.items():
        rates = [
            r.heart_rate
            for r in readings
            if r.customer_id == customer and (customer, r.timestamp) in expected
        ]
        assert row["readings"] == len(rates)
        assert row["min"] == min(rates)
        assert row["max"] == max(rates)
        # The report rounds the mean to one decimal as PostgreSQL's round(numeric, 1) does.
        mean = (Decimal(sum(rates)) / len(rates)).quantize(Decimal("0.1"), ROUND_HALF_UP)
        assert row["avg"] == float(mean)
    assert main(["stats", "--window", "5400"]) == 0
    table = capsys.readouterr().out
    assert f"readings: {len(expected)}" in table
    assert "(last 5400s, from the rollups)" in table
    assert "stddev" in table


def test_tail_prints_dead_letters_with_their_headers(pipeline):
    consumer = pipeline.start_consumer()
    pipeline.produce([(b"9", b"not json")])
    wait_for(
        lambda: consumer.metric("heartbeat_rejected_total", {"reason": "invalid_json"}) == 1,
        30,
        "rejected",
    )
    consumer.stop()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "heartbeat",
            "tail",
            "--dlq",
            "--from-beginning",
            "--max-messages",
            "1",
            "--json",
        ],
        env=os.environ | pipeline.env,
        capture_output=True,
        timeout=60,
        cwd=ROOT,
        check=True,
    )
    printed = json.loads(result.stdout.decode().splitlines()[0])
    assert printed["value"] == "not json"
    assert printed["key"] == "9"
    assert printed["headers"]["reason"] == "invalid_json"
    assert printed["headers"]["source_topic"] == pipeline.settings.kafka_topic


def test_stale_customers_are_those_silent_longer_than_the_threshold(pipeline):
    from datetime import UTC, datetime, timedelta

    from heartbeat.store import Store
    from heartbeat.validation import Reading

    now = datetime.now(UTC)
    fresh, old, ancient = (
        now - timedelta(seconds=30),
        now - timedelta(minutes=10),
        now - timedelta(hours=3),
    )
    with Store(pipeline.conninfo) as store:
        # Through the store, which keeps each customer's last-seen time the count reads.
        store.write_batch(
            "group",
            [
                Reading(1, fresh, 70, None),
                Reading(2, old, 70, None),
                Reading(3, old, 71, None),
                Reading(4, ancient, 72, None),
            ],
            {},
        )
        assert store.count_stale_customers(300) == 2  # 4 went quiet too long ago to count
        assert store.count_stale_customers(900) == 0
