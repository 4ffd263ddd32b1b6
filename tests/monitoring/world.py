"""A pipeline under monitoring, shared by the monitoring integration tests.

Real Kafka and PostgreSQL (the fixtures of tests/services.py), a real ``heartbeat consume``
and ``heartbeat produce``, each serving /metrics on its own port, and a real Prometheus
scraping both every second with the alerting rules loaded. Before the tests run, the
pipeline has stored readings, rejected some, flagged anomalies and reported its lag, and
three customers have readings only from 15-20 minutes ago (stale customers). Then
``heartbeat maintain`` has made the partitions and rolled up the minutes so far.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from heartbeat.generator import ReadingGenerator
from heartbeat.kafka import ensure_topics
from heartbeat.settings import Settings
from heartbeat_localstack.ports import free_port
from heartbeat_localstack.process import tail
from heartbeat_localstack.prometheus import PrometheusServer
from tests.integration.pipeline import (
    Pipeline,
    create_database,
    drop_database,
    stop,
    unique,
)
from tests.monitoring.queries import RULES

SCRAPE_INTERVAL = "1s"
# What Grafana's interval variables stand for when the tests run panel queries: a window
# holding many 1 s scrapes.
GRAFANA_INTERVALS = {"__rate_interval": "30s", "__interval": "15s", "__range": "5m"}
PRODUCER_RATE = 200  # readings per second
CUSTOMERS = 50
STALE_CUSTOMERS = frozenset(range(9001, 9004))
READY_TIMEOUT = 90.0


@dataclass
class Monitored:
    pipeline: Pipeline
    prometheus: PrometheusServer
    processes: dict[str, subprocess.Popen[bytes]]
    logs: Path

    def value(self, expr: str) -> float:
        """The sum of an instant query's values; 0 when it returns nothing."""
        return sum(float(item["value"][1]) for item in self.prometheus.query(expr))

    def diagnostics(self) -> str:
        parts = [f"--- {path.name}\n{tail(path, 15)}" for path in sorted(self.logs.glob("*.log"))]
        parts.append(f"--- prometheus.log\n{tail(self.prometheus.log_path, 10)}")
        return "\n".join(parts)


def _database(admin_conninfo: str) -> str:
    return create_database(admin_conninfo, unique("hb_monitoring").replace("-", "_"))


def _pipeline(bootstrap_servers: str, conninfo: str) -> Pipeline:
    topic = unique("heartbeats")
    values = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        "KAFKA_TOPIC": topic,
        "KAFKA_DLQ_TOPIC": f"{topic}.dlq",
        "KAFKA_CONSUMER_GROUP": unique("group"),
        "KAFKA_TOPIC_PARTITIONS": "3",
        "DATABASE_URL": conninfo,
        "CONSUMER_BATCH_MAX_WAIT_SECONDS": "0.2",
        "RETRY_INITIAL_SECONDS": "0.2",
        "RETRY_MAX_SECONDS": "2",
        "METRICS_HOST": "127.0.0.1",
        "LOG_LEVEL": "INFO",
        "PGDATABASE": str(conninfo_to_dict(conninfo).get("dbname", "")),
    }
    # No .env: a developer's file must not change what the tests measure.
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        **{key.lower(): value for key, value in values.items() if key != "PGDATABASE"},
    )
    ensure_topics(settings, [settings.kafka_topic, settings.kafka_dlq_topic])
    return Pipeline(settings=settings, conninfo=conninfo, env=values)


def _produce_stale_readings(pipeline: Pipeline) -> None:
    """Ten readings each for the stale customers, 20 to 15 minutes old, through Kafka."""
    generator = ReadingGenerator(
        customers=len(STALE_CUSTOMERS), first_customer=min(STALE_CUSTOMERS), seed=3
    )
    start = datetime.now(UTC) - timedelta(minutes=20)
    rounds = generator.rounds(start=start, step=timedelta(seconds=30))
    pipeline.produce_readings(islice(rounds, 10 * len(STALE_CUSTOMERS)))


def _wait_until_data_is_everywhere(world: Monitored) -> None:
    checks: dict[str, Callable[[], bool]] = {
        "both processes scraped": lambda: world.value('up{job="heartbeat"} == 1') == 2,
        "readings stored": lambda: world.value("sum(heartbeat_stored_total)") > 0,
        "a reading rejected": lambda: world.value("sum(heartbeat_rejected_total)") > 0,
        "an anomaly flagged": lambda: world.value("sum(heartbeat_anomalies_total)") > 0,
        "lag reported twice": lambda: (
            world.value("count(count_over_time(heartbeat_consumer_lag[1m]) >= 2)") > 0
        ),
        "progress reported per partition": lambda: (
            world.value("count(heartbeat_consumer_last_progress_timestamp_seconds)") > 0
        ),
        "stale customers stored": lambda: (
            world.pipeline.sql(
                "SELECT count(DISTINCT customer_id) FROM heartbeats WHERE customer_id = ANY(%s)",
                (sorted(STALE_CUSTOMERS),),
            )[0][0]
            == len(STALE_CUSTOMERS)
        ),
        # The consumer refreshes this gauge every 30 s; wait for a count after they landed.
        "stale customers counted": lambda: (
            world.value("max(heartbeat_stale_customers)") == len(STALE_CUSTOMERS)
        ),
    }
    deadline = time.monotonic() + READY_TIMEOUT
    pending = dict(checks)
    while pending:
        for name, process in world.processes.items():
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}\n{world.diagnostics()}")
        pending = {name: check for name, check in pending.items() if not check()}
        if pending and time.monotonic() > deadline:
            pytest.fail(f"still waiting for {sorted(pending)}\n{world.diagnostics()}")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def monitored(
    kafka_service, postgres_service, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Monitored]:
    logs = tmp_path_factory.mktemp("monitoring")
    conninfo = _database(postgres_service.conninfo)
    pipeline = _pipeline(kafka_service.bootstrap_servers, conninfo)
    ports = {"consumer": free_port(), "producer": free_port()}
    prometheus = PrometheusServer(
        logs / "prometheus",
        targets=[f"127.0.0.1:{port}" for port in ports.values()],
        rules_files=[RULES],
        port=free_port(),
        scrape_interval=SCRAPE_INTERVAL,
    )
    processes: dict[str, subprocess.Popen[bytes]] = {}
    world = Monitored(pipeline, prometheus, processes, logs)
    try:
        processes["consumer"] = pipeline.spawn(
            "consume", "--metrics-port", str(ports["consumer"]), log=logs / "consumer.log"
        )
        prometheus.start()
        processes["producer"] = pipeline.spawn(
            "produce",
            "--metrics-port",
            str(ports["producer"]),
            "--rate",
            str(PRODUCER_RATE),
            "--customers",
            str(CUSTOMERS),
            "--seed",
            "5",
            log=logs / "producer.log",
        )
        _produce_stale_readings(pipeline)
        _wait_until_data_is_everywhere(world)
        # Partitions and rollups as the chart's CronJob keeps them; the minutes written
        # from now on stay pending, so long-range panels read both kinds.
        maintain = pipeline.spawn("maintain", log=logs / "maintain.log")
        if maintain.wait(60) != 0:
            pytest.fail(f"heartbeat maintain failed\n{world.diagnostics()}")
        yield world
    finally:
        for process in processes.values():
            stop(process)
        prometheus.stop()
        drop_database(postgres_service.conninfo, conninfo_to_dict(conninfo)["dbname"])
