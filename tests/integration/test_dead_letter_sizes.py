"""Dead letters of every size against a real broker: cut to the topic's limit, or replaced by a
minimal one when the broker refuses them anyway; only a broker that does not answer is retried."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from heartbeat.deadletter import DeadLetterSender, dead_letter, open_sender
from heartbeat.errors import KafkaUnavailable
from heartbeat.kafka import (
    KafkaProducer,
    Record,
    client_config,
    ensure_topics,
    read_topic,
    topic_byte_budget,
)
from heartbeat.metrics import ConsumerMetrics, new_registry
from heartbeat.settings import Settings
from heartbeat.validation import Reason, Rejection, judge
from heartbeat_localstack.ports import free_port
from tests.integration.pipeline import unique

pytestmark = pytest.mark.integration

BROKER_DEFAULT_LIMIT = 1_048_588  # Kafka's message.max.bytes when nobody sets it


@pytest.fixture
def settings(kafka_service, monkeypatch, tmp_path) -> Settings:
    monkeypatch.chdir(tmp_path)  # keep a developer's .env out of the tests
    topic = unique("heartbeats")
    return Settings(
        _env_file=None,
        kafka_bootstrap_servers=kafka_service.bootstrap_servers,
        kafka_topic=topic,
        kafka_dlq_topic=f"{topic}.dlq",
        kafka_topic_partitions=1,
    )


@pytest.fixture
def registry():
    return new_registry(process_collectors=False)


def create_topic(settings: Settings, name: str, max_message_bytes: int) -> None:
    admin = AdminClient(client_config(settings))
    topic = NewTopic(name, 1, 1, config={"max.message.bytes": str(max_message_bytes)})
    for future in admin.create_topics([topic], request_timeout=15).values():
        future.result()


def produce(settings: Settings, topic: str, key: bytes, value: bytes, headers) -> None:
    failures: list[str] = []
    producer = KafkaProducer(settings, on_delivery=lambda r: r.error and failures.append(r.error))
    producer.produce(topic, key, value, headers)
    assert producer.flush(30) == 0
    assert not failures


def read_all(settings: Settings, topic: str, count: int, idle: float = 20) -> list[Record]:
    return list(
        read_topic(settings, topic, from_beginning=True, max_messages=count, idle_timeout=idle)
    )


def noise(size: int) -> bytes:
    """Bytes that are not UTF-8 and do not compress: the broker sees their real size."""
    return b"\xff" + os.urandom(size - 1)


def rejection_of(record: Record) -> Rejection:
    verdict = judge(record.value, now=datetime.now(UTC), max_future_skew=timedelta(minutes=5))
    assert isinstance(verdict, Rejection)
    return verdict


def metric(registry, name: str, labels: dict[str, str] | None = None) -> float | None:
    return registry.get_sample_value(name, labels or {})


def test_the_poison_message_is_dead_lettered_cut_to_the_default_limit(settings, registry):
    ensure_topics(settings, [settings.kafka_topic, settings.kafka_dlq_topic])
    value = b"\xff" + os.urandom(521_999)  # not UTF-8
    headers = [(f"h{i:03d}", os.urandom(4096)) for i in range(116)]
    produce(settings, settings.kafka_topic, b"k" * 1000, value, headers)
    [original] = read_all(settings, settings.kafka_topic, 1)
    rejection = rejection_of(original)
    assert rejection.reason is Reason.INVALID_UTF8

    sender = open_sender(settings, ConsumerMetrics(registry))
    assert sender.budget == 1_000_000
    # Whole, with its reason headers and renamed headers, it would not fit.
    assert dead_letter(original, rejection, 10**9).size > sender.budget
    letters = sender.batch()
    letters.deliver([(original, rejection)])

    [letter] = read_all(settings, settings.kafka_dlq_topic, 1)
    found = dict(letter.headers)
    assert found["truncated"] == b"value"
    assert found["source_value_size"] == b"522000"
    assert found["source_key_size"] == b"1000"
    assert found["source_header_count"] == b"116"
    assert found["reason"] == b"invalid_utf8"
    assert found["source_topic"] == settings.kafka_topic.encode()
    assert int(found["source_offset"]) == original.offset
    assert letter.key == original.key
    assert letter.value is not None
    assert value.startswith(letter.value)
    assert len(letter.value) > 500_000
    assert [(f"original_{n}", v) for n, v in headers] == [
        (n, v) for n, v in letter.headers if n.startswith("original_")
    ]
    assert metric(registry, "heartbeat_rejected_total", {"reason": "invalid_utf8"}) == 1
    assert metric(registry, "heartbeat_dead_letters_refused_total") == 0


def test_a_topic_s_own_limit_is_the_budget_and_a_missing_topic_falls_back_to_the_broker_s(
    settings,
):
    create_topic(settings, settings.kafka_dlq_topic, 4096)
    assert topic_byte_budget(settings, settings.kafka_dlq_topic) == 4096
    missing = unique("not-created")
    assert topic_byte_budget(settings, missing) == 1_000_000  # the client's own limit
    assert topic_byte_budget(settings, missing, client_max_bytes=2_000_000) == (
        BROKER_DEFAULT_LIMIT
    )


def test_many_dead_letters_cut_to_a_small_topic_limit_all_arrive(settings, registry):
    create_topic(settings, settings.kafka_dlq_topic, 4096)
    sender = open_sender(settings, ConsumerMetrics(registry))
    assert sender.budget == 4096
    pairs = [
        (
            Record(settings.kafka_topic, 0, offset, b"%d" % offset, noise(10_000), None, []),
            Rejection(Reason.INVALID_UTF8, "byte 0 is not UTF-8"),
        )
        for offset in range(40)
    ]
    # Produced together, they are batched together: no batch may exceed the topic's limit.
    letters = sender.batch()
    letters.deliver(pairs)

    letters = read_all(settings, settings.kafka_dlq_topic, len(pairs))
    assert sorted(int(dict(r.headers)["source_offset"]) for r in letters) == list(range(40))
    assert all(dict(r.headers)["truncated"] == b"value" for r in letters)
    assert metric(registry, "heartbeat_dead_letters_refused_total") == 0
    assert metric(registry, "heartbeat_rejected_total", {"reason": "invalid_utf8"}) == 40


def test_a_dead_letter_the_broker_refuses_is_replaced_by_a_minimal_one(settings, registry, caplog):
    create_topic(settings, settings.kafka_dlq_topic, 4096)
    producer = KafkaProducer(
        settings, on_delivery=lambda _: None, extra={"message.timeout.ms": 10_000}
    )
    # Budgeted as if the topic took 1,000,000 bytes: the broker refuses the 10 KB letter.
    sender = DeadLetterSender(
        producer, settings.kafka_dlq_topic, 1_000_000, ConsumerMetrics(registry)
    )
    original = Record(settings.kafka_topic, 2, 77, b"7", noise(10_000), None, [("a", b"b")])
    letters = sender.batch()
    with caplog.at_level(logging.WARNING, logger="heartbeat.deadletter"):
        letters.deliver([(original, rejection_of(original))])  # returns: nothing to retry

    [letter] = read_all(settings, settings.kafka_dlq_topic, 1)
    found = dict(letter.headers)
    assert (letter.key, letter.value) == (None, None)
    assert b"Message size too large" in found["minimal"]
    assert (found["source_partition"], found["source_offset"]) == (b"2", b"77")
    assert found["source_value_size"] == b"10000"
    assert found["reason"] == b"invalid_utf8"
    assert metric(registry, "heartbeat_dead_letters_refused_total") == 1
    assert metric(registry, "heartbeat_rejected_total", {"reason": "invalid_utf8"}) == 1
    assert any(f"{settings.kafka_topic}[2]@77" in r.getMessage() for r in caplog.records)


def test_a_minimal_dead_letter_refused_too_is_counted_and_the_batch_goes_on(
    settings, registry, caplog
):
    create_topic(settings, settings.kafka_dlq_topic, 200)  # smaller than any dead letter
    producer = KafkaProducer(
        settings, on_delivery=lambda _: None, extra={"message.timeout.ms": 10_000}
    )
    sender = DeadLetterSender(
        producer, settings.kafka_dlq_topic, 1_000_000, ConsumerMetrics(registry)
    )
    original = Record(settings.kafka_topic, 1, 5, b"7", noise(5000), None, [])
    letters = sender.batch()
    with caplog.at_level(logging.WARNING, logger="heartbeat.deadletter"):
        letters.deliver([(original, rejection_of(original))])
        letters.deliver([(original, rejection_of(original))])  # a retry of the batch: no-op

    assert metric(registry, "heartbeat_dead_letters_refused_total") == 2
    assert metric(registry, "heartbeat_rejected_total", {"reason": "invalid_utf8"}) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert f"{settings.kafka_topic}[1]@5" in errors[0]
    assert read_all(settings, settings.kafka_dlq_topic, 1, idle=5) == []


def test_a_broker_that_does_not_answer_is_retried_not_refused(settings, registry):
    nowhere = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    with pytest.raises(KafkaUnavailable):
        topic_byte_budget(nowhere, nowhere.kafka_dlq_topic, timeout=2)
    producer = KafkaProducer(
        nowhere, on_delivery=lambda _: None, extra={"message.timeout.ms": 1000}
    )
    sender = DeadLetterSender(
        producer, nowhere.kafka_dlq_topic, 1_000_000, ConsumerMetrics(registry)
    )
    original = Record(nowhere.kafka_topic, 0, 9, b"7", b"\xff", None, [])
    letters = sender.batch()
    with pytest.raises(KafkaUnavailable, match="1 of 1 dead-letter messages not delivered"):
        letters.deliver([(original, rejection_of(original))])
    assert metric(registry, "heartbeat_dead_letters_refused_total") == 0
    assert metric(registry, "heartbeat_rejected_total", {"reason": "invalid_utf8"}) == 0
