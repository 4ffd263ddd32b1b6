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

from heartbeat.errors import KafkaUnavailable, MessageRefused, SettingsError, TransientError
from heartbeat.generator import ReadingGenerator, customer_slice
from heartbeat.kafka import DeliveryReport, KafkaProducer, ensure_topics
from heartbeat.metrics import ProducerMetrics
from heartbeat.retry import retry_transient
from heartbeat.server import Health
from heartbeat.settings import Settings

logger = logging.getLogger(__name__)

# Below Kubernetes' default 30 s grace period, so the flush finishes before a SIGKILL.
FLUSH_TIMEOUT_SECONDS = 20.0
LOG_EVERY_SECONDS = 30.0


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
        self._kafka_ready = False
        self._first_error: str | None = None

    def request_stop(self, *_: object) -> None:
        if not self._stopping.is_set():
            logger.info("stop requested; flushing queued messages")
        self._stopping.set()

    def _on_delivery(self, report: DeliveryReport) -> None:
        if report.error is None:
            self.delivered += 1
            self.metrics.produced.inc()
            if not self._kafka_ready:
                self._mark_kafka(True)  # a fresh acknowledgement: Kafka is back
            return
        self._count_failure(report.error)

    def _count_failure(self, error: str) -> None:
        """A reading that will not be stored: counted, the first one logged, exit 1 at the end."""
        self.failed += 1
        self.metrics.produce_errors.inc()
        if self._first_error is None:
            self._first_error = error
            logger.error("delivery failed: %s", error)

    def _mark_kafka(self, ok: bool, detail: str = "") -> None:
        self._kafka_ready = ok
        self.health.set("kafka", ok, detail)
        self.metrics.dependency_up.labels("kafka").set(1 if ok else 0)

    def _ensure_topic(self) -> bool:
        def on_retry(error: BaseException, attempt: int, delay: float) -> None:
            self._mark_kafka(False, str(error))
            self.metrics.retries.labels("kafka").inc()
            logger.warning("kafka unavailable (%s); retry %d in %.1fs", error, attempt, delay)

        try:
            retry_transient(
                lambda: ensure_topics(self.settings, [self.settings.kafka_topic]),
                initial=self.settings.retry_initial_seconds,
                maximum=self.settings.retry_max_seconds,
                stopping=self._stopping,
                on_retry=on_retry,
            )
        except TransientError:
            return False  # stopped before Kafka answered
        self._mark_kafka(True)
        return True

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
        for reading in generator.rounds():
            if self._stopping.is_set() or (
                s.producer_count is not None and sent >= s.producer_count
            ):
                break
            if interval:
                next_at += interval
                pause = next_at - time.monotonic()
                if pause > 0:
                    producer.poll(0)
                    self._stopping.wait(pause)
            try:
                producer.produce(
                    s.kafka_topic, reading.key(), reading.to_json(), on_wait=self._waiting
                )
            except KafkaUnavailable:
                if not self._stopping.is_set():
                    raise
                break  # stopping with a full queue: what is queued is flushed below
            except MessageRefused as exc:
                # The client refuses this reading for good: counted like one the broker refuses.
                self._count_failure(str(exc))
            sent += 1
            producer.poll(0)
            self.health.tick()
            if time.monotonic() - last_log >= LOG_EVERY_SECONDS:
                last_log = time.monotonic()
                logger.info("sent %d, delivered %d, failed %d", sent, self.delivered, self.failed)

        remaining = producer.flush(FLUSH_TIMEOUT_SECONDS)
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
