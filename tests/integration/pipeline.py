"""Helpers for the pipeline's integration tests: settings per test, producing, waiting, querying."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from heartbeat.consumer import ConsumerApp
from heartbeat.generator import GeneratedReading, ReadingGenerator
from heartbeat.kafka import DeliveryReport, KafkaProducer, Record, read_topic
from heartbeat.metrics import ConsumerMetrics, new_registry
from heartbeat.migrations import Migrator, default_dir
from heartbeat.server import Health
from heartbeat.settings import Settings
from heartbeat.store import Store
from heartbeat.validation import VALID_MAX_BPM, VALID_MIN_BPM

ROOT = Path(__file__).resolve().parents[2]


def create_database(admin_conninfo: str, name: str) -> str:
    """A new database on the server ``admin_conninfo`` reaches, migrated; its conninfo."""
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    conninfo = make_conninfo(admin_conninfo, dbname=name)
    with Migrator(conninfo) as migrator:
        migrator.apply()
    return conninfo


def drop_database(admin_conninfo: str, name: str) -> None:
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def database_migrated_through(
    admin_conninfo: str, scratch: Path, last: int, prefix: str
) -> Iterator[str]:
    """A new database with the migrations numbered up to ``last`` only (what an older release
    left), its conninfo; dropped afterwards. ``scratch`` is an empty folder for the SQL files."""
    folder = scratch / "sql"
    folder.mkdir()
    for path in sorted(default_dir().glob("*.sql")):
        if int(path.name.split(".", 1)[0]) <= last:
            shutil.copy(path, folder / path.name)
    name = unique(prefix).replace("-", "_")
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    conninfo = make_conninfo(admin_conninfo, dbname=name)
    try:
        with Migrator(conninfo, folder) as migrator:
            migrator.apply()
        yield conninfo
    finally:
        drop_database(admin_conninfo, name)


@dataclass
class Pipeline:
    """One test's world: its own topics, consumer group and database."""

    settings: Settings
    conninfo: str
    env: dict[str, str]

    def with_settings(self, **changes: Any) -> Settings:
        return self.settings.model_copy(update=changes)

    # --- producing -------------------------------------------------------------

    def produce(
        self, messages: Iterable[tuple[bytes | None, bytes | None]], topic: str | None = None
    ) -> int:
        failures: list[str] = []

        def delivered(report: DeliveryReport) -> None:
            if report.error:
                failures.append(report.error)

        producer = KafkaProducer(self.settings, on_delivery=delivered)
        count = 0
        for key, value in messages:
            producer.produce(topic or self.settings.kafka_topic, key, value)
            count += 1
        assert producer.flush(30) == 0
        assert not failures, f"{len(failures)} deliveries failed, first: {failures[0]}"
        return count

    def produce_readings(self, readings: Iterable[GeneratedReading]) -> int:
        return self.produce((r.key(), r.to_json()) for r in readings)

    # --- the database ----------------------------------------------------------

    def sql(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def row_count(self) -> int:
        return self.sql("SELECT count(*) FROM heartbeats")[0][0]

    def stored_keys(self) -> set[tuple[int, datetime]]:
        return {(c, ts) for c, ts in self.sql("SELECT customer_id, ts FROM heartbeats")}

    def stored_offsets(self) -> dict[int, int]:
        rows = self.sql(
            "SELECT partition, next_offset FROM consumer_offsets"
            " WHERE consumer_group = %s AND topic = %s",
            (self.settings.kafka_consumer_group, self.settings.kafka_topic),
        )
        return dict(rows)

    def topic_records(self, topic: str | None = None, count: int | None = None) -> list[Record]:
        """Every record of a topic (the readings topic by default), from the beginning."""
        return list(
            read_topic(
                self.settings,
                topic or self.settings.kafka_topic,
                from_beginning=True,
                max_messages=count,
                idle_timeout=10,
            )
        )

    def kafka_committed_offsets(self) -> dict[int, int]:
        """The group's offsets as Kafka has them (what lag tools read)."""
        from confluent_kafka import Consumer, TopicPartition

        topic = self.settings.kafka_topic
        reader = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap_servers,
                "group.id": self.settings.kafka_consumer_group,
            }
        )
        try:
            partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
            committed = reader.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        finally:
            reader.close()
        return {tp.partition: tp.offset for tp in committed if tp.offset >= 0}

    @staticmethod
    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    # --- running the consumer --------------------------------------------------

    def start_consumer(self, **changes: Any) -> RunningConsumer:
        settings = self.with_settings(**changes)
        registry = new_registry(process_collectors=False)
        store = Store(self.conninfo, max_size=2, connect_timeout=2)
        store.open()
        app = ConsumerApp(
            settings,
            store=store,
            metrics=ConsumerMetrics(registry),
            health=Health(("kafka", "postgres"), 60),
        )
        running = RunningConsumer(app, store, registry)
        running.thread.start()
        return running

    def spawn(
        self, *args: str, env: dict[str, str] | None = None, log: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """`heartbeat ARGS` as a child process with this pipeline's settings."""
        full_env = os.environ | self.env | (env or {})
        command = [sys.executable, "-m", "heartbeat", *args]
        if log is None:
            return subprocess.Popen(
                command,
                env=full_env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=ROOT,
            )
        with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(command, env=full_env, stdout=out, stderr=out, cwd=ROOT)


@dataclass
class RunningConsumer:
    app: ConsumerApp
    store: Store
    registry: Any
    exit_code: list[int] = field(default_factory=list)
    error: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.exit_code.append(self.app.run())
        except BaseException as exc:  # surfaced by stop()
            self.error.append(exc)

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        if self.error:
            raise AssertionError("the consumer crashed") from self.error[0]
        return self.registry.get_sample_value(name, labels or {}) or 0.0

    def stop(self, timeout: float = 60) -> int:
        self.app.request_stop()
        self.thread.join(timeout)
        self.store.close()
        assert not self.thread.is_alive(), "consumer did not stop"
        if self.error:
            raise self.error[0]
        return self.exit_code[0]


def fixed_readings(
    customers: int, rounds: int, seed: int, start: datetime | None = None
) -> list[GeneratedReading]:
    """Readings with reproducible, distinct timestamps ending about now."""
    start = start or datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    generator = ReadingGenerator(customers=customers, seed=seed)
    stream = generator.rounds(start=start, step=timedelta(seconds=1))
    return [next(stream) for _ in range(customers * rounds)]


def valid_keys(readings: Iterable[GeneratedReading]) -> set[tuple[int, datetime]]:
    return {
        (r.customer_id, r.timestamp)
        for r in readings
        if VALID_MIN_BPM <= r.heart_rate <= VALID_MAX_BPM
    }


def http_get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def scrape(port: int) -> str:
    """The process's /metrics text; empty while it does not answer (yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as response:
            return response.read().decode()
    except OSError:
        return ""


def sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{}"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def terminate(process: subprocess.Popen[bytes], timeout: float = 60) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout)


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM a process still running, and SIGKILL it if it has not exited after `timeout`."""
    if process.poll() is not None:
        return
    try:
        terminate(process, timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
