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

Only the main loop polls Kafka or waits on PostgreSQL. A rebalance callback
just records what changed: a newly assigned partition stays paused until the
loop has read its stored offset, sought to it and resumed it. Every owned
partition's progress is watched against the brokers' end offsets; one with lag
that does not advance for ``CONSUMER_STALL_SECONDS`` makes ``/readyz`` fail.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from heartbeat.deadletter import DeadLetterSender, open_sender
from heartbeat.errors import KafkaUnavailable, TransientError
from heartbeat.kafka import (
    EndOffsets,
    KafkaConsumer,
    Partition,
    Record,
    ensure_topics,
)
from heartbeat.metrics import ConsumerMetrics
from heartbeat.progress import EndOffsetsPoller, Progress, describe_stall
from heartbeat.retry import retry_transient
from heartbeat.server import Health
from heartbeat.settings import Settings
from heartbeat.store import Conflict, Store, WriteResult
from heartbeat.validation import Reading, Rejection, judge

logger = logging.getLogger(__name__)

T = TypeVar("T")
CHECK_INTERVAL_SECONDS = 10.0
STALE_INTERVAL_SECONDS = 30.0
PROGRESS_INTERVAL_SECONDS = 1.0
END_OFFSETS_INTERVAL_SECONDS = 5.0


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
        # Assigned, paused, and waiting for the main loop to seek them to their stored offset.
        self._pending: set[Partition] = set()
        # Positions, log ends and last advances of the owned, positioned partitions.
        self._progress = Progress(
            settings.consumer_stall_seconds,
            from_start=settings.kafka_auto_offset_reset == "earliest",
        )
        self._stalled: list[Partition] = []
        self._last_progress_report = 0.0
        self._buffer: list[Record] = []  # the batch being collected or written
        self._overflow: list[Record] = []  # read while a write was being retried
        self._held: set[Partition] = set()  # paused by this loop while a dependency is retried
        self._last_check = 0.0
        self._last_stale_count = 0.0
        self._max_skew = timedelta(seconds=settings.consumer_max_future_skew_seconds)
        self._consumer: KafkaConsumer | None = None
        self._dead_letters: DeadLetterSender | None = None
        self._ends: EndOffsetsPoller | None = None

    # --- lifecycle -------------------------------------------------------------

    def request_stop(self, *_: object) -> None:
        """Ask the loop to finish (or abandon) its batch, leave the group and return."""
        if not self._stopping.is_set():
            logger.info("stop requested; finishing the current batch")
        self._stopping.set()

    def run(self) -> int:
        topics = [self.settings.kafka_topic, self.settings.kafka_dlq_topic]

        def connect() -> DeadLetterSender:
            ensure_topics(self.settings, topics)
            return open_sender(
                self.settings,
                self.metrics,
                on_unreachable=self._kafka_lost,
                extra=self._kafka_extra,
            )

        try:
            self._dead_letters = self._retry("kafka", connect, on_success=self._kafka_ok)
        except TransientError:
            return 0  # stopped before Kafka could be reached; nothing was read
        self._consumer = KafkaConsumer(
            self.settings,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_unreachable=self._kafka_lost,
            extra=self._kafka_extra,
        )
        self._ends = EndOffsetsPoller(
            EndOffsets(self.settings, extra=self._kafka_extra).read,
            interval=END_OFFSETS_INTERVAL_SECONDS,
        ).start()
        self._consumer.subscribe([self.settings.kafka_topic])
        self._mark("progress", True)
        logger.info(
            "consuming %s as group %s",
            self.settings.kafka_topic,
            self.settings.kafka_consumer_group,
        )
        try:
            while not self._stopping.is_set():
                self.health.tick()
                self._position_pending()
                self._collect()
                if self._buffer:
                    self._process()
                else:
                    self._periodic_checks()
                self._count_stale_customers()
                self._report_progress()
        finally:
            logger.info("leaving the consumer group")
            self._ends.stop()
            # The last batch's positions, for lag tools; asynchronous, never waited on.
            self._consumer.commit(self._progress.positions())
            self._consumer.close()
        logger.info("consumer stopped")
        return 0

    # --- rebalancing -----------------------------------------------------------

    def _on_assign(self, partitions: list[Partition]) -> None:
        """New partitions arrive paused; the main loop positions them (no I/O here)."""
        self._owned.update(partitions)
        self._pending.update(partitions)
        self.metrics.assigned_partitions.set(len(self._owned))
        logger.info(
            "assigned %s; reading their stored offsets",
            ", ".join(f"{p.topic}[{p.partition}]" for p in sorted(partitions)),
        )

    def _on_revoke(self, partitions: list[Partition], lost: bool) -> None:
        revoked = set(partitions)
        self._owned -= revoked
        self._pending -= revoked
        self._held -= revoked
        self._progress.forget(revoked)
        dropped = sum(1 for r in (*self._buffer, *self._overflow) if r.source in revoked)
        self._buffer = [r for r in self._buffer if r.source not in revoked]
        self._overflow = [r for r in self._overflow if r.source not in revoked]
        for p in revoked:
            for gauge in (self.metrics.consumer_lag, self.metrics.last_progress):
                with contextlib.suppress(KeyError):
                    gauge.remove(p.topic, str(p.partition))
        self.metrics.assigned_partitions.set(len(self._owned))
        logger.info(
            "%s %s; %d uncommitted messages left for the next owner",
            "lost" if lost else "revoked",
            ", ".join(f"{p.topic}[{p.partition}]" for p in sorted(revoked)),
            dropped,
        )

    def _position_pending(self) -> None:
        """Seek newly assigned partitions to the offsets stored in PostgreSQL, then resume them."""
        if not self._pending:
            return
        group = self.settings.kafka_consumer_group

        def load() -> dict[Partition, int | None]:
            wanted = sorted(self._pending)  # re-read: a rebalance may come while retrying
            if not wanted:
                return {}
            stored = self.store.load_offsets(group, sorted({p.topic for p in wanted}))
            return {p: stored.get(p) for p in wanted}

        try:
            starts = self._retry("postgres", load, on_success=self._postgres_ok)
        except TransientError:
            return  # stopping: these partitions are never read, so nothing of them is written
        assert self._consumer is not None
        positioned: dict[Partition, int | None] = {}
        for partition, offset in starts.items():
            if partition not in self._pending:
                continue  # revoked while the offsets were read
            try:
                self._consumer.seek(partition, offset)
            except KafkaUnavailable as exc:
                logger.warning("%s; trying again", exc)
                continue
            self._pending.discard(partition)
            positioned[partition] = offset
        if not positioned:
            return
        now = time.monotonic()
        wall = time.time()
        for partition, offset in positioned.items():
            self._progress.track(partition, offset, now)
            self.metrics.last_progress.labels(partition.topic, str(partition.partition)).set(wall)
        self._consumer.resume(positioned)
        logger.info(
            "reading %s",
            ", ".join(
                f"{p.topic}[{p.partition}]@{'reset' if o is None else o}"
                for p, o in sorted(positioned.items())
            ),
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
                readable = self._progress.tracked()
                self._buffer.extend(r for r in records if r.source in readable)

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
        assert self._dead_letters is not None
        self._dead_letters.forget()
        self._consumer.commit(offsets)
        wall = time.time()
        for p in self._progress.advance(offsets, time.monotonic()):
            self.metrics.last_progress.labels(p.topic, str(p.partition)).set(wall)
        self._record_success(written, result)

    def _owned_records(self) -> list[Record]:
        """The batch as it stands: partitions revoked meanwhile are left to their new owner."""
        readable = self._progress.tracked()
        return [r for r in self._buffer if r.source in readable]

    def _dead_letter(self, verdicts: dict[int, Reading | Rejection]) -> None:
        """Produce the batch's rejected messages and wait until Kafka has every one of them.

        A retry produces again only what was not delivered; the dead-letter topic
        is still at-least-once (a crash between delivery and the PostgreSQL commit
        sends them again), and each message names its source offset.
        """
        sender = self._dead_letters
        assert sender is not None

        def rejected() -> list[tuple[Record, Rejection]]:
            return [
                (r, v) for r in self._owned_records() if isinstance(v := verdicts[id(r)], Rejection)
            ]

        self._retry(
            "kafka",
            lambda: sender.deliver(rejected(), on_wait=self._waiting_for_kafka),
            on_success=self._kafka_ok,
        )

    def _waiting_for_kafka(self) -> None:
        """While the producer's queue is full: stay alive, and give up when stopping."""
        self.health.tick()
        if self._stopping.is_set():
            raise KafkaUnavailable("stopping while the dead-letter queue is full")

    def _store(
        self, verdicts: dict[int, Reading | Rejection]
    ) -> tuple[WriteResult, dict[Partition, int], int]:
        """Write the batch's readings, its dead letters and its offsets in one transaction."""

        def attempt() -> tuple[WriteResult, dict[Partition, int], int]:
            # Rows and offsets come from the same surviving records on every attempt.
            records = self._owned_records()
            sources: list[Record] = []
            readings: list[Reading] = []
            rejected: list[tuple[Record, Rejection]] = []
            for record in records:
                verdict = verdicts[id(record)]
                if isinstance(verdict, Reading):
                    sources.append(record)
                    readings.append(verdict)
                else:
                    rejected.append((record, verdict))
            offsets = next_offsets(records)

            def dead_letter_conflicts(conflicts: list[Conflict]) -> None:
                # Inside the open transaction: one attempt, and a Kafka failure rolls the
                # whole batch back to be retried, so the topic stays at-least-once.
                assert self._dead_letters is not None
                self._dead_letters.deliver(
                    [(sources[c.index], c.rejection) for c in conflicts],
                    on_wait=self._waiting_for_kafka,
                )

            started = time.perf_counter()
            result = self.store.write_batch(
                self.settings.kafka_consumer_group,
                readings,
                offsets,
                sources=sources,
                rejected=rejected,
                on_conflicts=dead_letter_conflicts,
            )
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

    def _report_progress(self) -> None:
        """Refresh lag and stall figures from the brokers' end offsets, about once a second."""
        now = time.monotonic()
        if now - self._last_progress_report < PROGRESS_INTERVAL_SECONDS or self._ends is None:
            return
        self._last_progress_report = now
        progress = self._progress
        self._ends.watch(progress.partitions())
        progress.observe(self._ends.latest())
        lags: dict[Partition, int] = {}
        for p in progress.partitions():
            lag = progress.lag(p)
            if lag is not None:
                lags[p] = lag
                self.metrics.consumer_lag.labels(p.topic, str(p.partition)).set(lag)
        stalled = progress.stalled(now)
        self.metrics.stalled_partitions.set(len(stalled))
        if stalled:
            self._mark("progress", False, describe_stall(stalled, progress.stall_seconds, lags))
        elif self._stalled:
            self._mark("progress", True)
        self._stalled = stalled

    def _kafka_ok(self) -> None:
        self._mark("kafka", True)

    def _postgres_ok(self) -> None:
        self._mark("postgres", True)

    def _kafka_lost(self, detail: str) -> None:
        self._mark("kafka", False, detail)

    def _mark(self, name: str, ok: bool, detail: str = "") -> None:
        self.health.set(name, ok, detail)
        if name != "progress":
            self.metrics.dependency_up.labels(name).set(1 if ok else 0)

    def _retry(
        self,
        dependency: str,
        action: Callable[[], T],
        *,
        on_success: Callable[[], None],
    ) -> T:
        """Run ``action`` until it succeeds, backing off on ``TransientError``.

        Gives up (re-raising the last error) only when a stop was requested.
        While waiting, the partitions are paused and the consumer keeps polling,
        so rebalances are served and the group does not evict this member.
        """

        def on_retry(error: BaseException, attempt: int, delay: float) -> None:
            # A write can fail on Kafka too (dead-lettering its conflicts): name the culprit.
            failed = "kafka" if isinstance(error, KafkaUnavailable) else dependency
            self._mark(failed, False, str(error))
            self.metrics.retries.labels(failed).inc()
            logger.warning("%s unavailable (%s); retry %d in %.1fs", failed, error, attempt, delay)

        try:
            result = retry_transient(
                action,
                initial=self.settings.retry_initial_seconds,
                maximum=self.settings.retry_max_seconds,
                stopping=self._stopping,
                on_retry=on_retry,
                sleep=self._wait_serving_kafka,
            )
        finally:
            self._release()
        on_success()
        return result

    def _wait_serving_kafka(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            self.health.tick()
            self._report_progress()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._consumer is None:
                time.sleep(min(remaining, 0.25))
                continue
            self._hold()
            # Held partitions return nothing; what was already fetched may still
            # come, and waits in the overflow for the next batch.
            records = self._consumer.poll_batch(100, min(remaining, 0.25))
            readable = self._progress.tracked()
            self._overflow.extend(r for r in records if r.source in readable)

    def _hold(self) -> None:
        """Pause every positioned partition while a dependency is retried."""
        assert self._consumer is not None
        wanted = set(self._progress.partitions()) - self._held
        if wanted:
            self._consumer.pause(wanted)
            self._held |= wanted

    def _release(self) -> None:
        """Resume exactly what ``_hold`` paused and this consumer still owns."""
        if self._held and self._consumer is not None:
            self._consumer.resume(self._held & set(self._progress.partitions()))
        self._held.clear()
