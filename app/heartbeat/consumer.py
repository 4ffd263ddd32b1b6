"""The consumer: Kafka -> validate -> dead-letter or store, exactly once.

One loop, one thread. A batch is collected (bounded by count and time), each
message is validated, rejected messages are produced to the dead-letter topic
and their delivery awaited, then the valid readings and the batch's next
offsets are written to PostgreSQL in one transaction. Only then are the offsets
committed to Kafka, for lag tools; PostgreSQL is the source of truth and each
newly assigned partition resumes from the offset stored there.

What a crash at any instant leads to:

* before the PostgreSQL commit: nothing of the batch is stored, its offsets are
  not advanced, the batch is read again (dead-letter messages may be produced
  twice; each carries its source offset so readers can tell).
* after it: rows and offsets are both durable; the batch is not read again.

A dependency that fails is retried with capped exponential backoff while the
process reports not-ready; the partitions are paused meanwhile so the group
keeps the member alive, and nothing is skipped.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from heartbeat.errors import KafkaUnavailable, TransientError
from heartbeat.kafka import (
    DeliveryReport,
    KafkaConsumer,
    KafkaProducer,
    Partition,
    Record,
    ensure_topics,
)
from heartbeat.metrics import ConsumerMetrics
from heartbeat.retry import retry_transient
from heartbeat.server import Health
from heartbeat.settings import Settings
from heartbeat.store import Store, WriteResult
from heartbeat.validation import Reading, Rejection, judge

logger = logging.getLogger(__name__)

T = TypeVar("T")
CHECK_INTERVAL_SECONDS = 10.0
STALE_INTERVAL_SECONDS = 30.0
DLQ_FLUSH_TIMEOUT_SECONDS = 30.0
# Each dead-letter attempt resolves every message (delivered or failed) before its
# flush returns, so a retry never races copies still queued from the attempt before.
DLQ_MESSAGE_TIMEOUT_MS = 25_000
# The client sends at most ~1 MB; a rejected message is cut to fit, and says so.
DLQ_MAX_VALUE_BYTES = 512 * 1024
DLQ_MAX_KEY_BYTES = 1024
DLQ_MAX_HEADER_BYTES = 4096


def dead_letter_headers(record: Record, rejection: Rejection) -> list[tuple[str, bytes]]:
    """Headers of a dead-letter message: the reason code and where the original came from."""
    headers = [
        ("reason", rejection.reason.value.encode()),
        ("error", rejection.detail.encode("utf-8", "replace")[:1024]),
        ("source_topic", record.topic.encode()),
        ("source_partition", str(record.partition).encode()),
        ("source_offset", str(record.offset).encode()),
    ]
    for name, value in record.headers:
        if value is not None:
            headers.append((f"original_{name}"[:256], value[:DLQ_MAX_HEADER_BYTES]))
    if record.value is not None and len(record.value) > DLQ_MAX_VALUE_BYTES:
        headers += [("truncated", b"value"), ("original_size", str(len(record.value)).encode())]
    if record.key is not None and len(record.key) > DLQ_MAX_KEY_BYTES:
        headers += [("truncated_key", b"key"), ("original_key_size", str(len(record.key)).encode())]
    return headers


def dead_letter_message(
    record: Record, rejection: Rejection
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """(key, value, headers) of a rejected message, cut to what Kafka accepts."""
    key = None if record.key is None else record.key[:DLQ_MAX_KEY_BYTES]
    value = None if record.value is None else record.value[:DLQ_MAX_VALUE_BYTES]
    return key, value, dead_letter_headers(record, rejection)


def next_offsets(records: Sequence[Record]) -> dict[Partition, int]:
    """For each partition in ``records``, the offset after the last one."""
    offsets: dict[Partition, int] = {}
    for record in records:
        source = record.source
        if record.offset + 1 > offsets.get(source, -1):
            offsets[source] = record.offset + 1
    return offsets


class ConsumerApp:
    def __init__(
        self,
        settings: Settings,
        *,
        store: Store,
        metrics: ConsumerMetrics,
        health: Health,
        kafka_extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.health = health
        self._kafka_extra = dict(kafka_extra or {})
        self._stopping = threading.Event()
        self._owned: set[Partition] = set()
        # Next offset to store per owned partition (None: not known until the first write).
        self._positions: dict[Partition, int | None] = {}
        self._buffer: list[Record] = []  # the batch being collected or written
        self._overflow: list[Record] = []  # read while a write was being retried
        self._paused = False
        self._last_check = 0.0
        self._last_stale_count = 0.0
        self._max_skew = timedelta(seconds=settings.consumer_max_future_skew_seconds)
        self._consumer: KafkaConsumer | None = None
        self._dlq: KafkaProducer | None = None

    # --- lifecycle -------------------------------------------------------------

    def request_stop(self, *_: object) -> None:
        """Ask the loop to finish (or abandon) its batch, leave the group and return."""
        if not self._stopping.is_set():
            logger.info("stop requested; finishing the current batch")
        self._stopping.set()

    def run(self) -> int:
        topics = [self.settings.kafka_topic, self.settings.kafka_dlq_topic]
        try:
            self._retry(
                "kafka", lambda: ensure_topics(self.settings, topics), on_success=self._kafka_ok
            )
        except TransientError:
            return 0  # stopped before Kafka could be reached; nothing was read
        self._dlq = KafkaProducer(
            self.settings,
            on_delivery=lambda _: None,
            on_unreachable=self._kafka_lost,
            extra={"message.timeout.ms": DLQ_MESSAGE_TIMEOUT_MS} | self._kafka_extra,
        )
        self._consumer = KafkaConsumer(
            self.settings,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lag=self._on_lag,
            on_unreachable=self._kafka_lost,
            extra=self._kafka_extra,
        )
        self._consumer.subscribe([self.settings.kafka_topic])
        logger.info(
            "consuming %s as group %s",
            self.settings.kafka_topic,
            self.settings.kafka_consumer_group,
        )
        try:
            while not self._stopping.is_set():
                self.health.tick()
                self._collect()
                if self._buffer:
                    self._process()
                else:
                    self._periodic_checks()
                self._count_stale_customers()
        finally:
            logger.info("leaving the consumer group")
            stored = {p: o for p, o in self._positions.items() if o is not None}
            self._consumer.commit(stored, wait=True)  # the last batch's, for lag tools
            self._consumer.close()
            self._dlq.flush(DLQ_FLUSH_TIMEOUT_SECONDS)
        logger.info("consumer stopped")
        return 0

    # --- rebalancing -----------------------------------------------------------

    def _on_assign(self, partitions: list[Partition]) -> dict[Partition, int | None]:
        group = self.settings.kafka_consumer_group
        try:
            # Inside the rebalance callback the consumer must not be polled, so
            # this retry only sleeps; the rebalance waits for PostgreSQL.
            stored = self._retry(
                "postgres",
                lambda: self.store.load_offsets(group, sorted({p.topic for p in partitions})),
                on_success=self._postgres_ok,
                serve_kafka=False,
            )
        except TransientError:
            # Stopping before PostgreSQL answered: start nowhere in particular and
            # never own these partitions, so nothing read from them is written.
            logger.warning("stopping before the offsets of %s could be read", partitions)
            return {}
        starts: dict[Partition, int | None] = {p: stored.get(p) for p in partitions}
        self._owned.update(partitions)
        self._positions.update(starts)
        self.metrics.assigned_partitions.set(len(self._owned))
        logger.info(
            "assigned %s",
            ", ".join(
                f"{p.topic}[{p.partition}]@{'reset' if o is None else o}" for p, o in starts.items()
            ),
        )
        return starts

    def _on_revoke(self, partitions: list[Partition], lost: bool) -> None:
        revoked = set(partitions)
        self._owned -= revoked
        for p in revoked:
            self._positions.pop(p, None)
        dropped = sum(1 for r in (*self._buffer, *self._overflow) if r.source in revoked)
        self._buffer = [r for r in self._buffer if r.source not in revoked]
        self._overflow = [r for r in self._overflow if r.source not in revoked]
        for p in revoked:
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(p.topic, str(p.partition))
        self.metrics.assigned_partitions.set(len(self._owned))
        logger.info(
            "%s %s; %d uncommitted messages left for the next owner",
            "lost" if lost else "revoked",
            ", ".join(f"{p.topic}[{p.partition}]" for p in sorted(revoked)),
            dropped,
        )

    def _on_lag(self, ends: dict[Partition, tuple[int, int]]) -> None:
        """Lag = what can be read minus what is stored, per owned partition.

        Computed from the position stored in PostgreSQL rather than from Kafka's
        committed offset, so a partition this consumer has not written yet (new,
        idle, or stuck behind an outage) has a lag series too.
        """
        from_start = self.settings.kafka_auto_offset_reset == "earliest"
        for partition, (low, high) in ends.items():
            if partition not in self._owned:
                continue
            position = self._positions.get(partition)
            if position is None:
                position = low if from_start else high
            self.metrics.consumer_lag.labels(partition.topic, str(partition.partition)).set(
                max(0, high - max(position, low))
            )

    # --- the batch -------------------------------------------------------------

    def _collect(self) -> None:
        """Fill the buffer up to the batch size or until the batch's time is up."""
        assert self._consumer is not None
        limit = self.settings.consumer_batch_max_messages
        deadline = time.monotonic() + self.settings.consumer_batch_max_wait_seconds
        while len(self._buffer) < limit and not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            records = self._consumer.poll_batch(limit - len(self._buffer), min(remaining, 0.25))
            if records:
                self._kafka_ok()
                self._buffer.extend(r for r in records if r.source in self._owned)

    def _process(self) -> None:
        now = datetime.now(UTC)
        verdicts = {
            id(record): judge(record.value, now=now, max_future_skew=self._max_skew)
            for record in self._buffer
        }
        self.metrics.consumed.inc(len(self._buffer))
        try:
            self._dead_letter(verdicts)
            result, offsets, written = self._store(verdicts)
        except TransientError as exc:
            logger.warning(
                "abandoning a batch of %d messages on shutdown (%s); it will be read again",
                len(self._buffer),
                exc,
            )
            self._buffer, self._overflow = [], []
            return
        self._buffer, self._overflow = self._overflow, []
        assert self._consumer is not None
        self._consumer.commit(offsets)
        self._positions.update({p: o for p, o in offsets.items() if p in self._owned})
        self._record_success(written, result)

    def _owned_records(self) -> list[Record]:
        """The batch as it stands: partitions revoked meanwhile are left to their new owner."""
        return [r for r in self._buffer if r.source in self._owned]

    def _dead_letter(self, verdicts: dict[int, Reading | Rejection]) -> None:
        """Produce the batch's rejected messages and wait until Kafka has every one of them.

        A retry produces again only what was not delivered; the dead-letter topic
        is still at-least-once (a crash between delivery and the PostgreSQL commit
        sends them again), and each message names its source offset.
        """
        assert self._dlq is not None
        dlq = self._dlq
        topic = self.settings.kafka_dlq_topic
        delivered: set[int] = set()

        def attempt() -> None:
            pending = [
                r
                for r in self._owned_records()
                if isinstance(verdicts[id(r)], Rejection) and id(r) not in delivered
            ]
            errors: list[str] = []

            def report(record: Record, rejection: Rejection) -> Callable[[DeliveryReport], None]:
                def on_delivery(report: DeliveryReport) -> None:
                    if report.error is None:
                        delivered.add(id(record))
                        self.metrics.rejected.labels(rejection.reason.value).inc()
                    else:
                        errors.append(report.error)

                return on_delivery

            for record in pending:
                rejection = verdicts[id(record)]
                assert isinstance(rejection, Rejection)
                key, value, headers = dead_letter_message(record, rejection)
                dlq.produce(
                    topic, key, value, headers, report(record, rejection), self._waiting_for_kafka
                )
            if dlq.flush(DLQ_FLUSH_TIMEOUT_SECONDS):
                dlq.purge()  # never carry queued copies into the next attempt
            missing = sum(1 for r in pending if id(r) not in delivered)
            if missing:
                detail = errors[0] if errors else "delivery timed out"
                raise KafkaUnavailable(
                    f"{missing} of {len(pending)} dead-letter messages not delivered: {detail}"
                )

        self._retry("kafka", attempt, on_success=self._kafka_ok)

    def _waiting_for_kafka(self) -> None:
        """While the producer's queue is full: stay alive, and give up when stopping."""
        self.health.tick()
        if self._stopping.is_set():
            raise KafkaUnavailable("stopping while the dead-letter queue is full")

    def _store(
        self, verdicts: dict[int, Reading | Rejection]
    ) -> tuple[WriteResult, dict[Partition, int], int]:
        def attempt() -> tuple[WriteResult, dict[Partition, int], int]:
            # Rows and offsets come from the same surviving records on every attempt.
            records = self._owned_records()
            readings = [v for r in records if isinstance(v := verdicts[id(r)], Reading)]
            offsets = next_offsets(records)
            started = time.perf_counter()
            result = self.store.write_batch(self.settings.kafka_consumer_group, readings, offsets)
            self.metrics.db_write_seconds.observe(time.perf_counter() - started)
            return result, offsets, len(records)

        return self._retry("postgres", attempt, on_success=self._postgres_ok)

    def _record_success(self, size: int, result: WriteResult) -> None:
        m = self.metrics
        m.batch_size.observe(size)
        m.stored.inc(len(result.stored))
        m.duplicates.inc(result.duplicates)
        committed = datetime.now(UTC)
        for row in result.stored:
            m.event_to_stored_seconds.observe(max(0.0, (committed - row.ts).total_seconds()))
            if row.anomaly is not None:
                m.anomalies.labels(row.anomaly.value).inc()
        if result.duplicates:
            logger.debug("skipped %d duplicate readings", result.duplicates)

    # --- dependencies ----------------------------------------------------------

    def _periodic_checks(self) -> None:
        """While idle, confirm both dependencies still answer (for /readyz)."""
        if time.monotonic() - self._last_check < CHECK_INTERVAL_SECONDS:
            return
        self._last_check = time.monotonic()
        consumer = self._consumer
        assert consumer is not None
        checks: tuple[tuple[str, Callable[[], None], Callable[[], None]], ...] = (
            ("kafka", lambda: consumer.ping(5.0), self._kafka_ok),
            ("postgres", self.store.ping, self._postgres_ok),
        )
        for name, check, ok in checks:
            try:
                check()
                ok()
            except TransientError as exc:
                self._mark(name, False, str(exc))

    def _count_stale_customers(self) -> None:
        """Refresh heartbeat_stale_customers now and then; a failure waits for the next turn."""
        if time.monotonic() - self._last_stale_count < STALE_INTERVAL_SECONDS:
            return
        self._last_stale_count = time.monotonic()
        try:
            stale = self.store.count_stale_customers(self.settings.stale_customer_seconds)
        except TransientError as exc:
            logger.debug("stale customers not counted: %s", exc)
            return
        self.metrics.stale_customers.set(stale)

    def _kafka_ok(self) -> None:
        self._mark("kafka", True)

    def _postgres_ok(self) -> None:
        self._mark("postgres", True)

    def _kafka_lost(self, detail: str) -> None:
        self._mark("kafka", False, detail)

    def _mark(self, name: str, ok: bool, detail: str = "") -> None:
        self.health.set(name, ok, detail)
        self.metrics.dependency_up.labels(name).set(1 if ok else 0)

    def _retry(
        self,
        dependency: str,
        action: Callable[[], T],
        *,
        on_success: Callable[[], None],
        serve_kafka: bool = True,
    ) -> T:
        """Run ``action`` until it succeeds, backing off on ``TransientError``.

        Gives up (re-raising the last error) only when a stop was requested.
        While waiting, the partitions are paused and the consumer keeps polling,
        so rebalances are served and the group does not evict this member.
        """

        def on_retry(error: BaseException, attempt: int, delay: float) -> None:
            self._mark(dependency, False, str(error))
            self.metrics.retries.labels(dependency).inc()
            logger.warning(
                "%s unavailable (%s); retry %d in %.1fs", dependency, error, attempt, delay
            )

        try:
            result = retry_transient(
                action,
                initial=self.settings.retry_initial_seconds,
                maximum=self.settings.retry_max_seconds,
                stopping=self._stopping,
                on_retry=on_retry,
                sleep=self._wait_serving_kafka if serve_kafka else self._wait,
            )
        finally:
            if serve_kafka:
                self._resume()
        on_success()
        return result

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set() and time.monotonic() < deadline:
            self.health.tick()
            time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))

    def _wait_serving_kafka(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            self.health.tick()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._consumer is None:
                time.sleep(min(remaining, 0.25))
                continue
            self._pause()
            # Paused partitions return nothing; a partition assigned meanwhile
            # may, and its records wait in the overflow for the next batch.
            records = self._consumer.poll_batch(100, min(remaining, 0.25))
            self._overflow.extend(r for r in records if r.source in self._owned)

    def _pause(self) -> None:
        assert self._consumer is not None
        self._consumer.pause(self._consumer.assignment())
        self._paused = True

    def _resume(self) -> None:
        if self._paused and self._consumer is not None:
            self._consumer.resume(self._consumer.assignment())
            self._paused = False
