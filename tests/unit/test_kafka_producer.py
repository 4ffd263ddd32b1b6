"""KafkaProducer.produce_all and its count of acknowledgements, on a client with no broker:
librdkafka refuses a too large message itself, and keeps the others queued."""

from __future__ import annotations

import pytest

from heartbeat.errors import MessageRefused
from heartbeat.kafka import KafkaProducer
from heartbeat.settings import load_settings


@pytest.fixture
def producer():
    settings = load_settings(kafka_bootstrap_servers="127.0.0.1:9")  # nothing listens there
    client = KafkaProducer(
        settings,
        on_delivery=lambda report: None,
        count_acknowledged=True,
        extra={"message.max.bytes": 2000, "message.timeout.ms": 60_000, "log_level": 0},
    )
    yield client
    client.purge()


def test_a_refused_message_is_handed_over_and_the_others_are_still_queued(producer):
    refused: list[str] = []
    keys = [b"1", b"2", b"3"]
    producer.produce_all("t", keys, [b"a", b"x" * 5000, b"c"], on_refused=refused.append)
    assert len(refused) == 1
    assert "too large" in refused[0].lower()
    assert producer.sent == 2
    assert len(producer) == 2  # queued, waiting for a broker
    assert producer.acknowledged == 0  # nothing acknowledged before a broker answers


def test_without_on_refused_a_refusal_raises_and_what_was_taken_is_counted(producer):
    with pytest.raises(MessageRefused):
        producer.produce_all("t", [b"1", b"2", b"3"], [b"a", b"x" * 5000, b"c"])
    assert producer.sent == 1


def test_failed_messages_are_reported_and_never_counted_as_acknowledged():
    failures: list[str] = []
    settings = load_settings(kafka_bootstrap_servers="127.0.0.1:9")
    client = KafkaProducer(
        settings,
        on_delivery=lambda report: failures.append(report.error or ""),
        count_acknowledged=True,
        extra={"log_level": 0},
    )
    client.produce_all("t", [b"1", b"2"], [b"a", b"b"])
    client.purge()  # both fail, reported on the next poll
    assert client.flush(5) == 0
    assert len(failures) == 2
    assert client.sent == 2
    assert client.acknowledged == 0
