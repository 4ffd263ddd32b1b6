"""The service fixtures give a working Kafka broker and a working, restartable PostgreSQL."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.services import KafkaService, PostgresService

pytestmark = pytest.mark.integration


def test_kafka_takes_a_new_topic_and_hands_back_a_produced_message(
    kafka_service: KafkaService,
) -> None:
    servers = kafka_service.bootstrap_servers
    topic = f"heartbeat_localstack-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": servers})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(
        timeout=30
    )
    assert topic in admin.list_topics(timeout=10).topics

    producer = Producer({"bootstrap.servers": servers})
    producer.produce(topic, key=b"patient-1", value=b"72")
    assert producer.flush(timeout=30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"{topic}-reader",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([topic])
        message = None
        deadline = time.monotonic() + 30
        while message is None and time.monotonic() < deadline:
            polled = consumer.poll(1.0)
            if polled is not None and polled.error() is None:
                message = polled
    finally:
        consumer.close()

    assert message is not None, "no message came back within 30 s"
    assert (message.key(), message.value()) == (b"patient-1", b"72")


def test_postgres_answers_refuses_while_stopped_and_answers_again_after_start(
    postgres_service: PostgresService,
) -> None:
    with psycopg.connect(postgres_service.conninfo) as connection:
        assert connection.execute("SELECT current_database(), 6 * 7").fetchone() == (
            "heartbeat",
            42,
        )

    postgres_service.stop()
    try:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(postgres_service.conninfo, connect_timeout=3).close()
    finally:
        postgres_service.start()

    with psycopg.connect(postgres_service.conninfo) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)


def test_postgres_env_names_the_same_server_as_conninfo(
    postgres_service: PostgresService,
) -> None:
    env = postgres_service.env()
    with psycopg.connect(
        host=env["PGHOST"],
        port=env["PGPORT"],
        user=env["PGUSER"],
        dbname=env["PGDATABASE"],
        password=env.get("PGPASSWORD"),
    ) as connection:
        row = connection.execute("SELECT current_user, current_database()").fetchone()
    assert row == (env["PGUSER"], env["PGDATABASE"])
