"""The consumer: Kafka -> validate -> dead-letter or store, exactly once.

The main loop is the only place that polls Kafka. ``step`` is one turn of it:
position newly assigned partitions, collect a batch (bounded by count and time)
into per-partition columns (``heartbeat.batch``), and hand it to the writer
(``heartbeat.writer``). The writer, one thread, makes sure Kafka has the batch's
dead letters, then writes the valid readings, the dead letters and the batch's
next offsets to PostgreSQL in one transaction. While it does, the loop collects
and decodes the next batch, and produces that batch's dead letters as it finds
them, so their acks arrive while the write before runs; the batch is handed over
only once the write before it has committed, so batches commit one at a time, in
order, and each partition's offsets only move forward. Offsets are then
committed to Kafka too, for lag tools; PostgreSQL is the source of truth and each
newly assigned partition resumes from the offset stored there.

What a crash at any instant leads to:

* before the PostgreSQL commit: nothing of the batch is stored, its offsets are
  not advanced, the batch is read again (dead-letter messages may be produced
  twice; each carries its source offset so readers can tell).
* after it: rows and offsets are both durable, and so is every dead letter of
  the batch on its topic (delivered before the commit); the batch is not read
  again.

A write that fails on a dependency is retried by the loop itself, with capped
exponential backoff, while the process reports not-ready; the partitions are
paused meanwhile (the loop keeps polling, so the group keeps the member) and
nothing is skipped. Each attempt writes only the partitions still owned.

A rebalance callback does no I/O: a newly assigned partition stays paused until
the loop has read its stored offset (after the write in flight, if any, has
settled), sought to it and resumed it. A revoked partition leaves the batch being
collected at once (dead letters already produced for it stay on the topic; its
next owner produces them again). A write already in flight is not interrupted: it
commits or fails whole, and since stored offsets only move forward and readings
and dead letters are inserted only if absent, the partition's new owner, reading
from the offset stored in PostgreSQL, stores each reading once whichever of the two
got there first. Every owned partition's progress is watched against the brokers'
end offsets; one with lag that does not advance for ``CONSUMER_STALL_SECONDS``
makes ``/readyz`` fail.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from heartbeat.batch import Batch
from heartbeat.deadletter import DeadLetterSender, open_sender
from heartbeat.dependencies import Dependencies
from heartbeat.errors import KafkaUnavailable, TransientError
from heartbeat.kafka import EndOffsets, KafkaConsumer, ensure_topics
from heartbeat.metrics import ConsumerMetrics
from heartbeat.progress import EndOffsetsPoller, Progress, describe_stall
from heartbeat.server import Health
from heartbeat.settings import Settings
from heartbeat.store import Store
from heartbeat.types import Partition, Record
from heartbeat.writer import Abandoned, Writer, Written

logger = logging.getLogger(__name__)

T = TypeVar("T")
CHECK_INTERVAL_SECONDS = 10.0
STALE_INTERVAL_SECONDS = 30.0
PROGRESS_INTERVAL_SECONDS = 1.0
END_OFFSETS_INTERVAL_SECONDS = 5.0
WAIT_SLICE_SECONDS = 0.25
SWITCH_INTERVAL_SECONDS = 0.0005


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
        self._deps = Dependencies(settings, health, metrics, self._stopping)
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
        self._max_skew = timedelta(seconds=settings.consumer_max_future_skew_seconds)
        self._batch = Batch(self._max_skew)  # being collected
        self._writer = Writer(
            settings,
            store,
            metrics,
            retry=self._retry,
            owned=self._progress.tracked,
            tick=self._waiting,
            on_wait=self._waiting_for_kafka,
        )
        self._held: set[Partition] = set()  # paused by this loop while a dependency is retried
        self._last_check = 0.0
        self._last_stale_count = 0.0
        self._consumer: KafkaConsumer | None = None
        self._ends: EndOffsetsPoller | None = None

    # --- lifecycle -------------------------------------------------------------

    def request_stop(self, *_: object) -> None:
        """Ask the loop to finish (or abandon) its batch, leave the group and return."""
        if not self._stopping.is_set():
            logger.info("stop requested; finishing the current batch")
        self._stopping.set()

    def attach(
        self,
        consumer: KafkaConsumer,
        dead_letters: DeadLetterSender,
        ends: EndOffsetsPoller | None = None,
    ) -> None:
        """Use these clients (``run`` makes the real ones; a test may pass its own)."""
        self._consumer = consumer
        self._writer.dead_letters = dead_letters
        self._ends = ends

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
            dead_letters = self._retry("kafka", connect)
        except TransientError:
            return 0  # stopped before Kafka could be reached; nothing was read
        consumer = KafkaConsumer(
            self.settings,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_unreachable=self._kafka_lost,
            extra=self._kafka_extra,
        )
        ends = EndOffsetsPoller(
            EndOffsets(self.settings, extra=self._kafka_extra).read,
            interval=END_OFFSETS_INTERVAL_SECONDS,
        ).start()
        self.attach(consumer, dead_letters, ends)
        # While the loop decodes, it holds the GIL; the writer thread needs it back between
        # each of its calls to PostgreSQL and waits up to the switch interval every time
        # (5 ms by default, a dozen times a batch). A shorter one drained a backlog 38 %
        # faster here (26,500 -> 36,700 readings/s).
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        consumer.subscribe([self.settings.kafka_topic])
        self._deps.mark("progress", True)
        logger.info(
            "consuming %s as group %s",
            self.settings.kafka_topic,
            self.settings.kafka_consumer_group,
        )
        try:
            while not self._stopping.is_set():
                self.step()
            self._settle()  # the write in flight, if any: committed, or left to be read again
        finally:
            sys.setswitchinterval(switch_interval)
            logger.info("leaving the consumer group")
            ends.stop()
            self._writer.shutdown()
            # The last batch's positions, for lag tools; asynchronous, never waited on.
            consumer.commit(self._progress.positions())
            consumer.close()
        logger.info("consumer stopped")
        return 0

    def step(self) -> None:
        """One turn of the loop: position, collect, hand over what was collected."""
        self.health.tick()
        if self._pending:
            self._settle()  # so the offsets read next include the write in flight
            self._position_pending()
        self._collect()
        collected = self._batch.size > 0
        if collected:
            self._writer.prepare(self._batch)  # while the write before it may still run
        # Stopping too: the batch in hand is written before leaving.
        self._settle(then_hand_over=collected)
        if not collected and not self._writer.in_flight:
            self._periodic_checks()
        self._count_stale_customers()
        self._report_progress()

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
        # What was collected of them is left to their next owner; a write already in
        # flight commits or fails whole (see the module's docstring).
        dropped = self._batch.drop(revoked)
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
            starts = self._retry("postgres", load)
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
        """Fill the batch up to its size, until its time is up and the writer is free."""
        assert self._consumer is not None
        limit = self.settings.consumer_batch_max_messages
        deadline = time.monotonic() + self.settings.consumer_batch_max_wait_seconds
        batch = self._batch
        while batch.size < limit and not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 and not self._writer.busy:
                break
            messages = self._consumer.poll_messages(
                limit - batch.size, min(remaining, WAIT_SLICE_SECONDS) if remaining > 0 else 0.01
            )
            if messages:
                self._kafka_ok()
                batch.add(messages, self._progress.tracked(), datetime.now(UTC))
                self._writer.collected(batch)  # its dead letters, produced now
            self.health.tick()

    def _hand_over(self) -> None:
        """Give the collected batch to the writer and start a new one."""
        batch, self._batch = self._batch, Batch(self._max_skew)
        self._writer.hand_over(batch)

    def _settle(self, *, then_hand_over: bool = False) -> None:
        """Wait for the write in flight (the writer retries it if a dependency failed it).

        With ``then_hand_over``, the batch collected meanwhile, if any is left after a
        revoke, goes to the writer before the settled batch's metrics and offsets are
        seen to, so PostgreSQL does not wait for them.
        """
        settled = self._writer.settle()
        if isinstance(settled, Abandoned):
            # Stopping: what was collected after it must not commit past it either.
            self._batch = Batch(self._max_skew)
            return
        if then_hand_over and self._batch.size:
            self._hand_over()
        if settled is not None:
            self._writer.record(settled)
            self._committed(settled)

    def _waiting(self) -> None:
        """While the write in flight runs: stay alive and keep lag figures fresh."""
        self.health.tick()
        self._report_progress()

    def _waiting_for_kafka(self) -> None:
        """While the producer's queue is full: stay alive, and give up when stopping."""
        self.health.tick()
        if self._stopping.is_set():
            raise KafkaUnavailable("stopping while the dead-letter queue is full")

    def _committed(self, written: Written) -> None:
        """After a batch's commit: readiness, Kafka's offsets and progress."""
        assert self._consumer is not None
        self._postgres_ok()
        if written.dead_lettered:
            self._kafka_ok()
        tracked = self._progress.tracked()
        self._consumer.commit({p: o for p, o in written.offsets.items() if p in tracked})
        wall = time.time()
        for p in self._progress.advance(written.offsets, time.monotonic()):
            self.metrics.last_progress.labels(p.topic, str(p.partition)).set(wall)

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
        self._deps.mark("kafka", True)

    def _postgres_ok(self) -> None:
        self._deps.mark("postgres", True)

    def _kafka_lost(self, detail: str) -> None:
        self._deps.mark("kafka", False, detail)

    def _mark(self, name: str, ok: bool, detail: str = "") -> None:
        self._deps.mark(name, ok, detail)

    def _retry(
        self, dependency: str, action: Callable[[], T], *, failed: BaseException | None = None
    ) -> T:
        """Run ``action`` until it succeeds (``Dependencies.retry``), serving Kafka meanwhile.

        Gives up (re-raising the last error) only when a stop was requested.
        While waiting, the partitions are paused and the consumer keeps polling,
        so rebalances are served and the group does not evict this member.
        """
        try:
            return self._deps.retry(
                dependency, action, sleep=self._wait_serving_kafka, failed=failed
            )
        finally:
            self._release()

    def _wait_serving_kafka(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            self.health.tick()
            self._report_progress()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._consumer is None:
                time.sleep(min(remaining, WAIT_SLICE_SECONDS))
                continue
            self._hold()
            # Held partitions return nothing; what was already fetched may still
            # come, and joins the batch being collected.
            messages = self._consumer.poll_messages(100, min(remaining, WAIT_SLICE_SECONDS))
            if messages:
                self._batch.add(messages, self._progress.tracked(), datetime.now(UTC))

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
