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
from heartbeat.errors import KafkaUnavailable, SettingsError, TransientError
from heartbeat.generator import ReadingGenerator, customer_slice
from heartbeat.kafka import DeliveryReport, KafkaProducer, ensure_topics
from heartbeat.metrics import ProducerMetrics
from heartbeat.server import Health
from heartbeat.settings import Settings

logger = logging.getLogger(__name__)

# Below Kubernetes' default 30 s grace period, so the flush finishes before a SIGKILL.
FLUSH_TIMEOUT_SECONDS = 20.0
LOG_EVERY_SECONDS = 30.0
# Unpaced, readings go to the client this many at a time; between two such slices the
# loop looks at the stop request and the count, reports liveness, serves Kafka's reports
# and counts acknowledgements into the metrics. Paced, a slice is one reading.
SLICE = 1024


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
        self._refused = 0  # readings the client refused outright (never sent)
        self._kafka_ready = False
        self._first_error: str | None = None
        self._deps = Dependencies(settings, health, metrics, self._stopping)

    def request_stop(self, *_: object) -> None:
        if not self._stopping.is_set():
            logger.info("stop requested; flushing queued messages")
        self._stopping.set()

    def _on_delivery(self, report: DeliveryReport) -> None:
        # Only failures are reported (count_acknowledged): acknowledgements are counted.
        if report.error is not None:
            self._count_failure(report.error)

    def _acknowledged(self, count: int) -> None:
        if count > 0:
            self.delivered += count
            self.metrics.produced.inc(count)
            if not self._kafka_ready:
                self._mark_kafka(True)  # a fresh acknowledgement: Kafka is back

    def _count_acknowledged(self, producer: KafkaProducer) -> None:
        """Take in the acknowledgements the client counted since the last time."""
        self._acknowledged(producer.acknowledged - self.delivered)

    def _refuse(self, error: str) -> None:
        """A reading the client refuses for good: counted like one the broker refuses."""
        self._refused += 1
        self._count_failure(error)

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
            count_acknowledged=True,
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
        topic, limit = s.kafka_topic, s.producer_count
        tick = self.health.tick
        for keys, values in generator.payload_rounds(most=1 if interval else SLICE):
            if self._stopping.is_set() or (limit is not None and sent >= limit):
                break
            if limit is not None and sent + len(values) > limit:
                keys, values = keys[: limit - sent], values[: limit - sent]
            if interval:
                next_at += interval
                pause = next_at - time.monotonic()
                if pause > 0:
                    producer.poll(0)
                    self._stopping.wait(pause)
            try:
                producer.produce_all(
                    topic, keys, values, on_wait=self._waiting, on_refused=self._refuse
                )
            except KafkaUnavailable:
                if not self._stopping.is_set():
                    raise
                break  # stopping with a full queue: what is queued is flushed below
            finally:
                sent = producer.sent + self._refused
            tick()
            self._count_acknowledged(producer)
            if time.monotonic() - last_log >= LOG_EVERY_SECONDS:
                last_log = time.monotonic()
                logger.info("sent %d, delivered %d, failed %d", sent, self.delivered, self.failed)

        remaining = producer.flush(FLUSH_TIMEOUT_SECONDS)
        self._count_acknowledged(producer)
        elapsed = time.monotonic() - started
        logger.info(
            "sent %d messages in %.3fs; delivered %d, failed %d, undelivered %d",
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
