"""The producer: generated readings -> Kafka, keyed by customer, paced to a rate.

The Kafka producer is idempotent with ``acks=all``, so a retried send never
duplicates a message within the partition. On SIGTERM or SIGINT the producer
stops generating, flushes what is queued and exits; the exit code is non-zero
if any message was not acknowledged.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from heartbeat.dependencies import Dependencies
from heartbeat.errors import KafkaUnavailable, MessageRefused, SettingsError, TransientError
from heartbeat.generator import GeneratedReading, ReadingGenerator, customer_slice
from heartbeat.kafka import DeliveryReport, KafkaProducer, ensure_topics
from heartbeat.metrics import ProducerMetrics
from heartbeat.server import Health
from heartbeat.settings import Settings

logger = logging.getLogger(__name__)

# Below Kubernetes' default 30 s grace period, so the flush finishes before a SIGKILL.
FLUSH_TIMEOUT_SECONDS = 20.0
LOG_EVERY_SECONDS = 30.0
# Acknowledgements are counted into the metrics once per this many readings sent.
COUNT_EVERY = 1024


class Payloads:
    """Each reading's key and value, byte for byte what ``GeneratedReading.key`` and
    ``to_json`` make, without ``json.dumps``: the readings of a round share one
    timestamp, formatted once, and a customer's key is made once."""

    def __init__(self) -> None:
        self._at: object = None
        self._stamp = b""
        self._keys: dict[int, bytes] = {}

    def __call__(self, reading: GeneratedReading) -> tuple[bytes, bytes]:
        if reading.timestamp is not self._at:
            self._at = reading.timestamp
            self._stamp = reading.timestamp.isoformat(timespec="microseconds").encode()
        key = self._keys.get(reading.customer_id)
        if key is None:
            key = self._keys[reading.customer_id] = reading.key()
        value = b'{"customer_id":%d,"timestamp":"%s","heart_rate":%d}' % (
            reading.customer_id,
            self._stamp,
            reading.heart_rate,
        )
        return key, value


def shard_index(settings: Settings, hostname: str | None = None) -> int:
    """This producer's shard: the setting, else the ordinal ending HOSTNAME, else 0."""
    if settings.producer_shard_index is not None:
        return settings.producer_shard_index
    if settings.producer_shard_count == 1:
        return 0
    name = hostname if hostname is not None else os.environ.get("HOSTNAME", "")
    ordinal = name.rsplit("-", 1)[-1]
    if not ordinal.isdigit() or int(ordinal) >= settings.producer_shard_count:
        raise SettingsError(
            f"invalid settings:\n  PRODUCER_SHARD_INDEX: not set, and HOSTNAME {name!r} does not "
            f"end with an ordinal below PRODUCER_SHARD_COUNT={settings.producer_shard_count}"
        )
    return int(ordinal)


class ProducerApp:
    def __init__(
        self,
        settings: Settings,
        *,
        metrics: ProducerMetrics,
        health: Health,
        kafka_extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.health = health
        self._kafka_extra = dict(kafka_extra or {})
        self._stopping = threading.Event()
        self.delivered = 0
        self.failed = 0
        self._acks = 0  # acknowledgements from the broker
        self._taken = 0  # ... of which counted in ``delivered``
        self._kafka_ready = False
        self._first_error: str | None = None
        self._deps = Dependencies(settings, health, metrics, self._stopping)

    def request_stop(self, *_: object) -> None:
        if not self._stopping.is_set():
            logger.info("stop requested; flushing queued messages")
        self._stopping.set()

    def _on_delivery(self, report: DeliveryReport) -> None:
        if report.error is None:
            self._acknowledged(1)
            return
        self._count_failure(report.error)

    def _acknowledged(self, count: int) -> None:
        if count:
            self.delivered += count
            self.metrics.produced.inc(count)
            if not self._kafka_ready:
                self._mark_kafka(True)  # a fresh acknowledgement: Kafka is back

    def _acknowledge_one(self) -> None:
        self._acks += 1  # counted into ``delivered`` and the metrics now and then

    def _count_acknowledged(self) -> None:
        """Take in the acknowledgements counted since the last time."""
        self._acknowledged(self._acks - self._taken)
        self._taken = self._acks

    def _count_failure(self, error: str) -> None:
        """A reading that will not be stored: counted, the first one logged, exit 1 at the end."""
        self.failed += 1
        self.metrics.produce_errors.inc()
        if self._first_error is None:
            self._first_error = error
            logger.error("delivery failed: %s", error)

    def _mark_kafka(self, ok: bool, detail: str = "") -> None:
        self._kafka_ready = ok
        self._deps.mark("kafka", ok, detail)

    def _ensure_topic(self) -> bool:
        try:
            self._deps.retry(
                "kafka",
                lambda: ensure_topics(self.settings, [self.settings.kafka_topic]),
                sleep=self._wait_alive,
            )
        except TransientError:
            return False  # stopped before Kafka answered
        self._kafka_ready = True
        return True

    def _wait_alive(self, seconds: float) -> None:
        """Between attempts to reach Kafka at start: alive for ``/healthz``, not ready.

        A producer correctly waiting for Kafka is not stuck; were its liveness to fail, the
        kubelet would restart it again and again, which reaches Kafka no sooner.
        """
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            self.health.tick()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._stopping.wait(min(remaining, 1.0))

    def _waiting(self) -> None:
        """While the send queue is full (Kafka away): stay alive; give up when stopping."""
        self.health.tick()
        if self._stopping.is_set():
            raise KafkaUnavailable("stopping while the send queue is full")

    def run(self) -> int:
        s = self.settings
        customers = customer_slice(
            s.producer_customers, s.producer_shard_count, shard_index(s), s.producer_first_customer
        )
        if not self._ensure_topic():
            return 0
        generator = ReadingGenerator(
            customers=len(customers),
            first_customer=customers.start,
            seed=s.producer_seed,
            anomaly_rate=s.producer_anomaly_rate,
            invalid_rate=s.producer_invalid_rate,
            spike_probability=s.producer_spike_probability,
        )
        producer = KafkaProducer(
            s,
            on_delivery=self._on_delivery,
            on_unreachable=lambda detail: self._mark_kafka(False, detail),
            on_acknowledged=self._acknowledge_one,
            extra=self._kafka_extra,
        )
        interval = 1.0 / s.producer_rate if s.producer_rate > 0 else 0.0
        logger.info(
            "producing to %s: customers %d..%d, %s, %s",
            s.kafka_topic,
            customers.start,
            customers.stop - 1,
            f"{s.producer_rate:g} msg/s" if interval else "unpaced",
            f"{s.producer_count} messages" if s.producer_count is not None else "until stopped",
        )
        sent = 0
        started = next_at = time.monotonic()
        last_log = started
        payloads = Payloads()
        topic, limit = s.kafka_topic, s.producer_count
        tick = self.health.tick
        for reading in generator.rounds():
            if self._stopping.is_set() or (limit is not None and sent >= limit):
                break
            if interval:
                next_at += interval
                pause = next_at - time.monotonic()
                if pause > 0:
                    producer.poll(0)
                    self._stopping.wait(pause)
            key, value = payloads(reading)
            try:
                producer.produce(topic, key, value, on_wait=self._waiting)
            except KafkaUnavailable:
                if not self._stopping.is_set():
                    raise
                break  # stopping with a full queue: what is queued is flushed below
            except MessageRefused as exc:
                # The client refuses this reading for good: counted like one the broker refuses.
                self._count_failure(str(exc))
            sent += 1
            producer.poll(0)
            tick()
            if interval or sent % COUNT_EVERY == 0:
                self._count_acknowledged()
                if time.monotonic() - last_log >= LOG_EVERY_SECONDS:
                    last_log = time.monotonic()
                    logger.info(
                        "sent %d, delivered %d, failed %d", sent, self.delivered, self.failed
                    )

        remaining = producer.flush(FLUSH_TIMEOUT_SECONDS)
        self._count_acknowledged()
        elapsed = time.monotonic() - started
        logger.info(
            "sent %d messages in %.1fs; delivered %d, failed %d, undelivered %d",
            sent,
            elapsed,
            self.delivered,
            self.failed,
            remaining,
        )
        if self.failed or remaining:
            logger.error("%d messages were not delivered", self.failed + remaining)
            return 1
        return 0
