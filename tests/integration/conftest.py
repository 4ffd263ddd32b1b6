"""Per-test world for the pipeline's integration tests: fresh topics, group and database."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from heartbeat.kafka import ensure_topics
from heartbeat.settings import Settings
from tests.integration.pipeline import Pipeline, create_database, drop_database, unique


@pytest.fixture
def database(postgres_service):
    """A new, migrated database on the shared server; dropped afterwards."""
    name = unique("hb").replace("-", "_")
    yield create_database(postgres_service.conninfo, name)
    drop_database(postgres_service.conninfo, name)


@pytest.fixture
def empty_database(postgres_service, monkeypatch, tmp_path):
    """A new database with no migration applied, named by ``DATABASE_URL``; dropped afterwards."""
    monkeypatch.chdir(tmp_path)  # keep a developer's .env out of the tests
    name = unique("empty").replace("-", "_")
    with psycopg.connect(postgres_service.conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    conninfo = make_conninfo(postgres_service.conninfo, dbname=name)
    monkeypatch.setenv("DATABASE_URL", conninfo)
    yield conninfo
    drop_database(postgres_service.conninfo, name)


@pytest.fixture
def pipeline(kafka_service, database, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # keep a developer's .env out of the tests
    topic = unique("heartbeats")
    settings = Settings(
        kafka_bootstrap_servers=kafka_service.bootstrap_servers,
        kafka_topic=topic,
        kafka_dlq_topic=f"{topic}.dlq",
        kafka_consumer_group=unique("group"),
        kafka_topic_partitions=6,
        database_url=database,
        consumer_batch_max_messages=500,
        consumer_batch_max_wait_seconds=0.2,
        retry_initial_seconds=0.2,
        retry_max_seconds=2,
        metrics_port=0,
    )
    # Topics exist before a test produces, as they would once any consumer ran.
    ensure_topics(settings, [settings.kafka_topic, settings.kafka_dlq_topic])
    params = conninfo_to_dict(database)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_service.bootstrap_servers,
        "KAFKA_TOPIC": topic,
        "KAFKA_DLQ_TOPIC": f"{topic}.dlq",
        "KAFKA_CONSUMER_GROUP": settings.kafka_consumer_group,
        "DATABASE_URL": database,
        "CONSUMER_BATCH_MAX_MESSAGES": "500",
        "CONSUMER_BATCH_MAX_WAIT_SECONDS": "0.2",
        "RETRY_INITIAL_SECONDS": "0.2",
        "RETRY_MAX_SECONDS": "2",
        "PGDATABASE": str(params.get("dbname", "")),
    }
    return Pipeline(settings=settings, conninfo=database, env=env)


@pytest.fixture
def world(pipeline, monkeypatch, logging_as_it_was):
    """The pipeline with its settings in the environment, for tests that run `main`."""
    for name, value in pipeline.env.items():
        monkeypatch.setenv(name, value)
    return pipeline
