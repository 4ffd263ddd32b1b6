"""The consumer's writer: the batches the loop hands over, committed one at a time, in order.

The loop hands a batch over (``hand_over``) only once the one before it has settled.
The writer, one thread, then makes sure Kafka has the batch's dead letters and writes
its valid readings, its dead letters and its next offsets to PostgreSQL in one
transaction (``Store.write_rows``). So batches commit one at a time, in order, and each
partition's offsets only move forward.

A batch's dead letters do not wait for its turn: the loop calls ``collected`` after
each poll, which produces the dead letters of the rejections just found at once
(``deadletter.DeadLetters.send``, never waiting for Kafka). Batch N+1's acks thus
arrive while batch N's transaction runs, and before N+1's transaction the writer
waits only for those still unacknowledged and produces only those never queued
(``DeadLetters.deliver``). Every dead letter of a batch is on the topic before the
batch commits, so a crash after the commit loses none; a crash before it, or a
partition revoked while its batch is collected, may leave dead letters on the topic
whose readings are read again and dead-lettered again (the topic is at-least-once;
each dead letter names its source offset; ``dead_letters`` in PostgreSQL keeps one
row per message).

While batch N is written, the loop packs batch N+1 for its COPY (``prepare``) and,
once N has settled, hands N+1 over before it records N's metrics: PostgreSQL's
session then goes from one commit to the next statement in about a millisecond
instead of waiting for the packing and the bookkeeping (15 ms a batch of 5,000 and
43 ms one of 20,000, measured, a seventh of each write). What was packed is used only
if the batch has not changed since (``Batch.revision``); otherwise, as after a
revoke or on a retry, the writer thread packs it again.

``settle`` waits for the write in flight. One that failed on a dependency is retried
there, on the loop's thread and with the loop's retry (which keeps serving Kafka):
each attempt writes only the partitions still owned and produces again only the dead
letters not delivered. A write in flight is never interrupted: a partition revoked
meanwhile is committed whole with its batch (see ``heartbeat.consumer``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Container
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from heartbeat.batch import Batch, Columns
from heartbeat.deadletter import DeadLetters, DeadLetterSender
from heartbeat.errors import KafkaUnavailable, TransientError
from heartbeat.kafka import to_record
from heartbeat.metrics import ConsumerMetrics, ages
from heartbeat.reading_rows import pack_rows
from heartbeat.settings import Settings
from heartbeat.store import BatchResult, Conflict, Store
from heartbeat.types import Partition
from heartbeat.validation import to_micros

logger = logging.getLogger(__name__)

T = TypeVar("T")
WAIT_SLICE_SECONDS = 0.25


class Retry(Protocol):
    """The loop's retry: run ``action`` until it succeeds, serving Kafka meanwhile."""

    def __call__(
        self, dependency: str, action: Callable[[], T], *, failed: BaseException | None = None
    ) -> T: ...


@dataclass(frozen=True, slots=True)
class Written:
    """A batch committed: what it stored, the offsets it moved to, its readings' columns,
    and when it committed (microseconds since 2000-01-01 UTC, as ``validation.to_micros``)."""

    result: BatchResult
    offsets: dict[Partition, int]
    size: int
    columns: Columns
    dead_lettered: bool
    committed_at: int


@dataclass(frozen=True, slots=True)
class Packed:
    """A batch's readings as the store takes them, at one of the batch's revisions."""

    revision: int
    columns: Columns
    offsets: dict[Partition, int]
    copy_data: bytes

    @classmethod
    def of(cls, batch: Batch) -> Packed:
        columns = batch.columns()
        return cls(
            batch.revision,
            columns,
            batch.next_offsets(),
            pack_rows(columns.customer_ids, columns.micros, columns.heart_rates),
        )


@dataclass(frozen=True, slots=True)
class Abandoned:
    """A batch given up on while stopping: nothing of it committed; it is read again."""

    size: int


class Writer:
    """Hands batches to the writer thread, settles them, and retries a failed one."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        metrics: ConsumerMetrics,
        *,
        retry: Retry,
        owned: Callable[[], Container[Partition]],
        tick: Callable[[], None],
        on_wait: Callable[[], None],
    ) -> None:
        """``owned``: the partitions a retry still writes. ``tick``: called while waiting
        for a write. ``on_wait``: while the dead-letter queue is full (it may raise)."""
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.dead_letters: DeadLetterSender | None = None
        self._retry = retry
        self._owned = owned
        self._tick = tick
        self._on_wait = on_wait
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="heartbeat-writer")
        self._collecting: tuple[Batch, DeadLetters] | None = None
        self._packed: tuple[Batch, Packed] | None = None  # of the batch to hand over next
        self._writing: tuple[Batch, DeadLetters, Future[Written]] | None = None

    @property
    def in_flight(self) -> bool:
        """A batch was handed over and has not settled yet."""
        return self._writing is not None

    @property
    def busy(self) -> bool:
        """The writer thread is still at the batch in flight."""
        return self._writing is not None and not self._writing[2].done()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def collected(self, batch: Batch) -> None:
        """Produce the dead letters of the rejections just added to ``batch``; no waiting."""
        rejected = batch.new_rejections()
        if rejected:
            self._letters(batch).send([(to_record(m), r) for m, r in rejected])

    def prepare(self, batch: Batch) -> None:
        """Pack ``batch`` for its COPY now, on the loop's thread, while the write before
        it may still run; ``hand_over`` passes it on if the batch is unchanged by then."""
        self._packed = (batch, Packed.of(batch))

    def hand_over(self, batch: Batch) -> None:
        """Give the writer thread ``batch``; the one before it must have settled."""
        assert self._writing is None, "one batch in flight at a time"
        letters = self._letters(batch)
        self._collecting = None
        packed = None
        if self._packed is not None and self._packed[0] is batch:
            packed = self._packed[1]
        self._packed = None
        self.metrics.consumed.inc(batch.size)
        future = self._executor.submit(self._write, batch, letters, packed)
        self._writing = (batch, letters, future)

    def settle(self) -> Written | Abandoned | None:
        """Wait for the write in flight, retrying it if a dependency failed it.

        ``None`` if nothing was in flight; ``Abandoned`` if a stop came while retrying.
        A ``Written`` batch's metrics wait for ``record``, so that the loop can hand
        the next batch over first.
        """
        if self._writing is None:
            return None
        batch, letters, future = self._writing
        while not future.done():
            self._tick()
            wait((future,), WAIT_SLICE_SECONDS)
        self._writing = None
        try:
            written = future.result()
        except TransientError as exc:
            try:
                written = self._write_retrying(batch, letters, exc)
            except TransientError as again:
                logger.warning(
                    "abandoning a batch of %d messages on shutdown (%s); it will be read again",
                    batch.size,
                    again,
                )
                return Abandoned(batch.size)
        return written

    def _letters(self, batch: Batch) -> DeadLetters:
        if self._collecting is None or self._collecting[0] is not batch:
            assert self.dead_letters is not None
            self._collecting = (batch, self.dead_letters.batch())
        return self._collecting[1]

    def _write(self, batch: Batch, letters: DeadLetters, packed: Packed | None) -> Written:
        """Dead letters, then rows and offsets in one transaction (the writer thread's job)."""
        delivered = self._deliver(batch, letters)
        return self._store(batch, letters, delivered, packed)

    def _write_retrying(
        self, batch: Batch, letters: DeadLetters, failed: TransientError
    ) -> Written:
        """``_write`` again, after ``failed``, with retries; each attempt writes only the
        partitions still owned."""

        def deliver() -> bool:
            batch.keep(self._owned())
            return self._deliver(batch, letters)

        kafka = isinstance(failed, KafkaUnavailable)
        delivered = self._retry("kafka", deliver, failed=failed if kafka else None)

        def store() -> Written:
            batch.keep(self._owned())
            return self._store(batch, letters, delivered)

        return self._retry("postgres", store, failed=None if kafka else failed)

    def _deliver(self, batch: Batch, letters: DeadLetters) -> bool:
        """Until Kafka has every dead letter of the batch: what was produced early is only
        waited for, what was not delivered is produced (again)."""
        rejected = batch.rejections()
        if rejected:
            letters.deliver([(to_record(m), r) for m, r in rejected], on_wait=self._on_wait)
        return bool(rejected)

    def _store(
        self,
        batch: Batch,
        letters: DeadLetters,
        dead_lettered: bool,
        packed: Packed | None = None,
    ) -> Written:
        """Write the batch's readings, its dead letters and its offsets in one transaction."""
        if packed is None or packed.revision != batch.revision:
            packed = Packed.of(batch)
        columns, offsets = packed.columns, packed.offsets
        rejected = [(to_record(m), r) for m, r in batch.rejections()]
        sources = columns.sources

        def dead_letter_conflicts(conflicts: list[Conflict]) -> None:
            # Inside the open transaction: one attempt, and a Kafka failure rolls the
            # whole batch back to be retried, so the topic stays at-least-once.
            letters.deliver(
                [(to_record(sources[c.index]), c.rejection) for c in conflicts],
                on_wait=self._on_wait,
            )

        started = time.perf_counter()
        result = self.store.write_rows(
            self.settings.kafka_consumer_group,
            packed.copy_data,
            columns,
            offsets,
            rejected=rejected,
            source=lambda i: to_record(sources[i]),
            on_conflicts=dead_letter_conflicts,
        )
        self.metrics.db_write_seconds.observe(time.perf_counter() - started)
        return Written(
            result,
            offsets,
            batch.size,
            columns,
            dead_lettered or bool(result.conflicts),
            # Taken here, not when the loop settles the write: that may come up to a
            # batch's collecting time later and would add it to every reading's age.
            committed_at=to_micros(datetime.now(UTC)),
        )

    def record(self, written: Written) -> None:
        """The committed batch's metrics (see ``settle``)."""
        m, result = self.metrics, written.result
        m.batch_size.observe(written.size)
        m.stored.inc(result.stored)
        m.duplicates.inc(result.duplicates)
        m.anomalies.labels("low").inc(result.low)
        m.anomalies.labels("high").inc(result.high)
        if result.stored:
            if result.stored_instants is None:
                instants = sorted(written.columns.micros)
            else:
                instants = sorted(to_micros(ts) for ts in result.stored_instants)
            counts, total = ages(instants, written.committed_at, m.event_to_stored_seconds.bounds)
            m.event_to_stored_seconds.observe_counts(counts, total)
        if result.duplicates:
            logger.debug("skipped %d duplicate readings", result.duplicates)
