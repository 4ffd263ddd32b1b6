"""End-to-end throughput of the pipeline against a naive writer, on the same data, in one run.

    python -m tests.benchmarks.pipeline_throughput [--readings 20000] [--customers 200]

Starts its own Kafka and PostgreSQL (local processes, in a temporary folder),
then measures, on one set of generated readings:

* pipeline: produce the readings (idempotent producer, unpaced) while the real
  consumer validates, dead-letters, and stores them with batched binary COPY,
  committing rows and offsets together; the clock stops when every offset is
  stored.
* drain: the real consumer again, in a group of its own, reading the whole topic
  from the start, into a database whose ``heartbeats`` is partitioned by day
  (partitions made by ``heartbeat maintain``, as shipped) and into one where it is a
  single table, alternately, twice each (the best of each is kept); the clock runs
  from the first stored offset to the last.
* naive: a consumer of the same topic (its own group, its own database) that
  validates and then INSERTs and COMMITs one row per message.

It prints readings/s for each and their ratios. The machine is shared, so read
the ratios, not the absolute figures; nothing here asserts a threshold.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from heartbeat.consumer import ConsumerApp
from heartbeat.generator import ReadingGenerator
from heartbeat.kafka import DeliveryReport, KafkaConsumer, KafkaProducer, ensure_topics
from heartbeat.maintain import Maintainer
from heartbeat.metrics import ConsumerMetrics, new_registry
from heartbeat.server import Health
from heartbeat.settings import Settings
from heartbeat.store import Store
from heartbeat.validation import Reading, validate
from heartbeat_localstack.kafka import KafkaBroker
from heartbeat_localstack.postgres import PostgresServer
from tests.integration.pipeline import create_database

logger = logging.getLogger("benchmark")

# The shipped schema with heartbeats as one table again (same columns, constraints and
# indexes); the views reading it are not needed to store readings.
UNPARTITION = """
DROP VIEW heartbeat_hours_live;
DROP VIEW heartbeat_fleet_minutes_live;
DROP VIEW heartbeat_minutes_live;
ALTER TABLE heartbeats RENAME TO heartbeats_partitioned;
CREATE TABLE heartbeats (LIKE heartbeats_partitioned INCLUDING ALL);
DROP TABLE heartbeats_partitioned;
"""


def partitioned_database(admin: str, name: str, settings: Settings) -> str:
    conninfo = create_database(admin, name)
    with Store(conninfo, max_size=2) as store:
        Maintainer(store, settings).run()
    return conninfo


def unpartitioned_database(admin: str, name: str) -> str:
    conninfo = create_database(admin, name)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(UNPARTITION)
        row = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'heartbeats'"
        ).fetchone()
    if not row or row[0] != 3:  # the key, the BRIN on ts, the partial one on anomalies
        raise SystemExit(f"the single heartbeats table has {row} indexes, not 3")
    return conninfo


def stored_total(conninfo: str, group: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE consumer_group = %s",
            (group,),
        ).fetchone()
    return int(row[0]) if row else 0


def produce(settings: Settings, payloads: list[tuple[bytes, bytes]]) -> float:
    failures: list[str] = []

    def delivered(report: DeliveryReport) -> None:
        if report.error:
            failures.append(report.error)

    started = time.perf_counter()
    producer = KafkaProducer(settings, on_delivery=delivered)
    for key, value in payloads:
        producer.produce(settings.kafka_topic, key, value)
        producer.poll(0)
    if producer.flush(120) or failures:
        raise SystemExit(f"produce failed: {failures[:1]}")
    return time.perf_counter() - started


def run_pipeline(settings: Settings, conninfo: str, payloads: list[tuple[bytes, bytes]]) -> float:
    store = Store(conninfo, max_size=2)
    store.open()
    app = ConsumerApp(
        settings,
        store=store,
        metrics=ConsumerMetrics(new_registry(process_collectors=False)),
        health=Health(("kafka", "postgres"), 600),
    )
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    time.sleep(3)  # join the group before the clock starts
    started = time.perf_counter()
    produce(settings, payloads)
    while stored_total(conninfo, settings.kafka_consumer_group) < len(payloads):
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    app.request_stop()
    thread.join(60)
    store.close()
    return elapsed


def run_drain(settings: Settings, conninfo: str, expected: int) -> float:
    """Seconds per reading stored while the consumer drains a full topic; from the first
    stored offset (after it joined the group) to the last."""
    store = Store(conninfo, max_size=2)
    store.open()
    app = ConsumerApp(
        settings,
        store=store,
        metrics=ConsumerMetrics(new_registry(process_collectors=False)),
        health=Health(("kafka", "postgres"), 600),
    )
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    while (first := stored_total(conninfo, settings.kafka_consumer_group)) == 0:
        time.sleep(0.01)
    started = time.perf_counter()
    while stored_total(conninfo, settings.kafka_consumer_group) < expected:
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    app.request_stop()
    thread.join(60)
    store.close()
    return elapsed / max(1, expected - first)


def run_naive(settings: Settings, conninfo: str, expected: int) -> float:
    """Validate, then INSERT and COMMIT one row per message (keeps no offsets at all)."""
    store = Store(conninfo, max_size=1)
    store.open()
    seen = 0
    # New partitions arrive paused; this baseline keeps no offsets, so it reads at once.
    consumer = KafkaConsumer(
        settings,
        on_assign=lambda parts: consumer.resume(parts),
        on_revoke=lambda parts, lost: None,
    )
    consumer.subscribe([settings.kafka_topic])
    started = None
    while seen < expected:
        for record in consumer.poll_batch(1, 1.0):
            started = started or time.perf_counter()
            verdict = validate(
                record.value, now=datetime.now(UTC), max_future_skew=timedelta(minutes=5)
            )
            if isinstance(verdict, Reading):
                store.write_one(verdict)
            seen += 1
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    store.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readings", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--batch", type=int, default=5000, help="consumer batch size")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    generator = ReadingGenerator(customers=args.customers, seed=2026)
    stream = generator.rounds(
        start=datetime.now(UTC) - timedelta(hours=2), step=timedelta(milliseconds=100)
    )
    payloads = [(r.key(), r.to_json()) for r in (next(stream) for _ in range(args.readings))]

    with tempfile.TemporaryDirectory(prefix="heartbeat-bench-") as tmp:
        broker = KafkaBroker(Path(tmp) / "kafka")
        database = PostgresServer(Path(tmp) / "postgres")
        broker.start(wait=False)
        database.start()
        broker.wait_ready()
        try:
            base = Settings(
                _env_file=None,
                kafka_bootstrap_servers=broker.bootstrap_servers,
                kafka_topic="bench",
                kafka_dlq_topic="bench.dlq",
                consumer_batch_max_messages=args.batch,
                consumer_batch_max_wait_seconds=0.2,
                metrics_port=0,
            )
            ensure_topics(base, [base.kafka_topic, base.kafka_dlq_topic])
            pipeline = base.model_copy(update={"kafka_consumer_group": "bench-pipeline"})
            naive = base.model_copy(update={"kafka_consumer_group": "bench-naive"})

            pipeline_seconds = run_pipeline(
                pipeline,
                partitioned_database(database.conninfo, "bench_pipeline", pipeline),
                payloads,
            )
            # Alternated, twice each, the best kept: the machine is shared.
            drains: dict[str, float] = {}
            for round_ in range(2):
                for label, make in (
                    ("by day", lambda name: partitioned_database(database.conninfo, name, base)),
                    ("one table", lambda name: unpartitioned_database(database.conninfo, name)),
                ):
                    name = f"bench_{label.replace(' ', '_')}_{round_}"
                    group = base.model_copy(update={"kafka_consumer_group": name})
                    seconds = run_drain(group, make(name), len(payloads))
                    drains[label] = min(drains.get(label, seconds), seconds)
            naive_seconds = run_naive(
                naive, create_database(database.conninfo, "bench_naive"), len(payloads)
            )
        finally:
            broker.stop()
            database.stop()

    n = len(payloads)
    pipeline_rate, naive_rate = n / pipeline_seconds, n / naive_seconds
    print(f"readings: {n} ({args.customers} customers), consumer batch: {args.batch}")
    for label, seconds, rate in (
        ("pipeline (produce + consume + batched COPY + commit)", pipeline_seconds, pipeline_rate),
        ("naive    (consume + INSERT/COMMIT per message)", naive_seconds, naive_rate),
    ):
        print(f"{label:54} {seconds:8.2f} s {rate:10.0f} readings/s")
    for label, per_reading in drains.items():
        name = f"drain    (heartbeats {label}, from a full topic)"
        print(f"{name:54} {per_reading * n:8.2f} s {1 / per_reading:10.0f} readings/s")
    print(f"ratio pipeline / naive: {pipeline_rate / naive_rate:.1f}x")
    ratio = drains["one table"] / drains["by day"]
    print(f"ratio drain partitioned by day / one table: {ratio:.2f}x")


if __name__ == "__main__":
    main()
