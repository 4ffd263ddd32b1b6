"""Dead letters: what a rejected message becomes on the dead-letter topic, and their sending.

A dead letter carries the rejected message's key, value and headers (each one
renamed ``original_<name>``) and headers of its own::

    reason, error               why it was rejected (``error`` at most 1 KiB)
    source_topic, source_partition, source_offset
                                where the original is
    truncated                   only if something was cut: what, of ``value``, ``headers``,
                                ``key`` and ``error``, comma-separated in that order
    source_value_size, source_key_size, source_header_count, source_headers_size
                                the original's sizes in bytes (headers: names and values),
                                whenever something was cut

Each dead letter is budgeted as one whole record (value, key, every header name
and value, plus a fixed allowance for the record's and its batch's framing)
against the dead-letter topic's limit. Compression is never counted on: a record
that only fits compressed may be refused. What does not fit is cut in this order:

1. the value beyond its first KiB: what makes a message large is nearly always
   its value, and its first KiB shows what it was (JSON cut short, binary noise);
2. the original headers, dropped whole (a cut trace id or signature would be
   wrong rather than short), keeping, in order, every one that still fits;
3. the key, cut to what fits (it names whose message it was, and is small);
4. the value's first KiB;
5. the error detail (only for budgets too small for the reason headers).

For any budget of at least ``MIN_BUDGET_BYTES`` the result fits.

If the broker refuses a dead letter all the same (the budget was wrong, the topic
changed), a *minimal* one is sent instead: no key, value or original headers;
the reason headers, the original's sizes and ``minimal`` saying why the full one
was not sent. If that is refused too, it is counted and logged: a refused dead
letter never stops the consumer (the database keeps every rejected message).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from heartbeat.errors import KafkaUnavailable, MessageRefused
from heartbeat.kafka import (
    DeliveryReport,
    Headers,
    KafkaProducer,
    Record,
    topic_byte_budget,
)
from heartbeat.metrics import ConsumerMetrics
from heartbeat.settings import Settings
from heartbeat.validation import Rejection

logger = logging.getLogger(__name__)

# A v2 record batch's header (61 bytes) and one record's framing at most (36 bytes:
# length, attributes, timestamp and offset deltas, key, value and header-count
# lengths as varints), rounded up.
RECORD_OVERHEAD_BYTES = 128
# A header's name and value lengths, two varints of at most 5 bytes each.
HEADER_OVERHEAD_BYTES = 10
MAX_DETAIL_BYTES = 1024
MAX_REFUSAL_BYTES = 128
VALUE_HEAD_BYTES = 1024
# The smallest budget every dead letter, minimal or not, fits in.
MIN_BUDGET_BYTES = 1024
# Each attempt resolves every message (delivered or failed) before its wait ends, so a
# retry never races copies still queued from the attempt before.
MESSAGE_TIMEOUT_MS = 25_000
FLUSH_TIMEOUT_SECONDS = 30.0
WAIT_SLICE_SECONDS = 0.25

TRUNCATED = "truncated"
MINIMAL = "minimal"
PARTS = ("value", "headers", "key", "error")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    headers: Headers

    @property
    def size(self) -> int:
        return record_size(self.key, self.value, self.headers)


def header_size(name: str, value: bytes) -> int:
    return len(name.encode()) + len(value) + HEADER_OVERHEAD_BYTES


def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """At most the bytes a record takes on the broker, alone in its batch, uncompressed."""
    return (
        RECORD_OVERHEAD_BYTES
        + len(key or b"")
        + len(value or b"")
        + sum(header_size(name, data) for name, data in headers)
    )


def batch_bytes(budget: int) -> int:
    """The producer's batch limit for a budget: a batch of several dead letters fits too."""
    return max(1, budget - RECORD_OVERHEAD_BYTES)


def dead_letter(record: Record, rejection: Rejection, budget: int) -> DeadLetter:
    """The dead letter of ``record``, whole if it fits in ``budget`` bytes, else cut to fit."""
    detail = _cut_text(rejection.detail.encode("utf-8", "replace"), MAX_DETAIL_BYTES)
    key, value, kept = record.key, record.value, _original_headers(record)
    if record_size(key, value, _reason_headers(record, rejection, detail) + kept) <= budget:
        return DeadLetter(key, value, _reason_headers(record, rejection, detail) + kept)

    sizes = _size_headers(record)
    reserved = [(TRUNCATED, ",".join(PARTS).encode()), *sizes]  # the longest note possible

    def excess() -> int:
        headers = _reason_headers(record, rejection, detail) + kept + reserved
        return record_size(key, value, headers) - budget

    cut: set[str] = set()
    if excess() > 0 and value is not None and len(value) > VALUE_HEAD_BYTES:
        value = value[: max(VALUE_HEAD_BYTES, len(value) - excess())]
        cut.add("value")
    if excess() > 0 and kept:
        kept = _first_fit(kept, sum(header_size(n, v) for n, v in kept) - excess())
        cut.add("headers")
    if excess() > 0 and key:
        key = key[: max(0, len(key) - excess())]
        cut.add("key")
    if excess() > 0 and value:
        value = value[: max(0, len(value) - excess())]
        cut.add("value")
    if excess() > 0 and detail:
        detail = _cut_text(detail, max(0, len(detail) - excess()))
        cut.add("error")
    if excess() < 0 and value is not None and record.value is not None:
        # Room freed by dropping headers goes back to the value.
        value = record.value[: len(value) - excess()]
    note = [(TRUNCATED, ",".join(p for p in PARTS if p in cut).encode())] if cut else []
    return DeadLetter(key, value, _reason_headers(record, rejection, detail) + kept + note + sizes)


def _first_fit(headers: Headers, room: int) -> Headers:
    """The headers, in order, that fit in ``room`` bytes, skipping each one that does not."""
    kept = []
    for name, data in headers:
        if header_size(name, data) <= room:
            kept.append((name, data))
            room -= header_size(name, data)
    return kept


def minimal_dead_letter(
    record: Record, rejection: Rejection, budget: int, refusal: str
) -> DeadLetter:
    """What is sent when the broker refused ``record``'s dead letter: reason, source, sizes."""
    detail = _cut_text(rejection.detail.encode("utf-8", "replace"), MAX_DETAIL_BYTES)
    note = (MINIMAL, _cut_text(f"full dead letter refused: {refusal}".encode(), MAX_REFUSAL_BYTES))
    rest = [note, *_size_headers(record)]
    excess = record_size(None, None, _reason_headers(record, rejection, detail) + rest) - budget
    if excess > 0:
        detail = _cut_text(detail, max(0, len(detail) - excess))
    return DeadLetter(None, None, _reason_headers(record, rejection, detail) + rest)


def _reason_headers(record: Record, rejection: Rejection, detail: bytes) -> Headers:
    return [
        ("reason", rejection.reason.value.encode()),
        ("error", detail),
        ("source_topic", record.topic.encode()),
        ("source_partition", str(record.partition).encode()),
        ("source_offset", str(record.offset).encode()),
    ]


def _original_headers(record: Record) -> Headers:
    # A name that is not valid UTF-8 arrives with surrogates; it must still encode.
    return [
        (f"original_{name}".encode("utf-8", "replace").decode(), data)
        for name, data in record.headers
        if data is not None
    ]


def _size_headers(record: Record) -> Headers:
    names = sum(len(name.encode("utf-8", "replace")) for name, _ in record.headers)
    values = sum(len(data) for _, data in record.headers if data is not None)
    return [
        ("source_value_size", str(len(record.value or b"")).encode()),
        ("source_key_size", str(len(record.key or b"")).encode()),
        ("source_header_count", str(len(record.headers)).encode()),
        ("source_headers_size", str(names + values).encode()),
    ]


def _cut_text(data: bytes, limit: int) -> bytes:
    """At most ``limit`` bytes of UTF-8 text, never ending inside a character."""
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", "ignore").encode()


# --- sending -----------------------------------------------------------------------

Source = tuple[str, int, int]  # topic, partition, offset of the rejected message
# While waiting for delivery reports, how long each flush lasts: the producer may hold
# other batches' dead letters too, so a wait never lasts longer than its own need.
FLUSH_SLICE_SECONDS = 0.005


class _Failure(NamedTuple):
    error: str
    refused: bool
    size: int


class _QueueFull(Exception):
    """The producer's queue is full: ``DeadLetters.send`` leaves the rest to ``deliver``."""


def _source(record: Record) -> Source:
    return (record.topic, record.partition, record.offset)


def _queue_full() -> None:
    raise _QueueFull


class DeadLetterSender:
    """The dead-letter topic's producer, and the dead letters of the batches it serves.

    Each batch has its own ``DeadLetters`` (``batch``): produced early, as the batch is
    collected, and waited for before it is committed.
    """

    def __init__(
        self,
        producer: KafkaProducer,
        topic: str,
        budget: int,
        metrics: ConsumerMetrics,
        *,
        flush_timeout: float = FLUSH_TIMEOUT_SECONDS,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.budget = min(budget, producer.max_message_bytes)
        self.metrics = metrics
        self.flush_timeout = flush_timeout
        # Delivery reports come on whichever thread polls the producer: the loop producing
        # one batch's dead letters while the writer waits for another's.
        self.lock = threading.Lock()

    def batch(self) -> DeadLetters:
        """The dead letters of a new batch: nothing of it sent yet."""
        return DeadLetters(self)


class DeadLetters:
    """One batch's dead letters: which are in flight, on the topic, failed, or refused.

    ``send`` produces them as they are found, without waiting; ``deliver`` produces
    what is neither delivered nor in flight and waits until Kafka has each one, or
    refused it for good. A failed ``deliver`` is retried with the same batch: only
    what is missing is produced again, and never while a copy is still in flight.
    The dead-letter topic stays at-least-once: a crash between delivery and commit
    sends the batch's dead letters again.
    """

    def __init__(self, sender: DeadLetterSender) -> None:
        self._sender = sender
        self._lock = sender.lock
        self._attempts = 0
        self._in_flight: dict[Source, int] = {}  # the attempt whose report is awaited
        self._delivered: set[Source] = set()
        self._failed: dict[Source, _Failure] = {}  # reports not judged yet
        # Sources whose full dead letter was refused (and why): the minimal one is due.
        self._refused: dict[Source, str] = {}

    def send(self, pairs: Sequence[tuple[Record, Rejection]]) -> None:
        """Produce the dead letter of each pair never sent; never waits for Kafka.

        Whatever cannot be queued now (the queue is full, Kafka fails) is left to
        ``deliver``; a refusal is judged there too.
        """
        with contextlib.suppress(_QueueFull, KafkaUnavailable):
            self._produce([p for p in pairs if self._untried(_source(p[0]))], _queue_full)

    def deliver(
        self,
        pairs: Sequence[tuple[Record, Rejection]],
        on_wait: Callable[[], None] | None = None,
    ) -> None:
        """Make sure every pair's dead letter is on the topic, or refused for good.

        Produces what is neither delivered nor in flight, waits for what is in
        flight, then judges: a refused one is replaced by a minimal one (if that is
        refused too, it is counted and logged). Raises ``KafkaUnavailable`` if any
        other is undelivered: retry later with the same pairs. ``on_wait`` is
        called about every 0.25 s while waiting (for room in the queue or for
        delivery reports); it may raise to give up.
        """
        pending = {_source(record): (record, rejection) for record, rejection in pairs}
        with self._lock:
            for source in self._delivered.intersection(pending):
                del pending[source]
            # A report of an earlier attempt that failed: this attempt produces it again.
            todo = [
                pending[s]
                for s in pending
                if s not in self._in_flight and not (s in self._failed and self._failed[s].refused)
            ]
            for record, _ in todo:
                self._failed.pop(_source(record), None)
        if not pending:
            return
        while True:
            try:
                self._produce(todo, on_wait)
                self._wait(pending, on_wait)
            except BaseException:
                self._sender.producer.purge()  # never carry queued copies into the next attempt
                self._expire(pending)
                raise
            todo = []
            with self._lock:
                # A transient failure stays failed: the next attempt produces it again.
                failures = {s: f.error for s, f in self._failed.items() if s in pending}
                refusals = {s: f for s, f in self._failed.items() if s in pending and f.refused}
                for source in refusals:
                    del self._failed[source]
                    del failures[source]
            for source, failure in refusals.items():
                self._sender.metrics.dead_letters_refused.inc()
                if source in self._refused:
                    logger.error(
                        "minimal dead letter of %s[%d]@%d refused too (%s); it is not on %s",
                        *source,
                        failure.error,
                        self._sender.topic,
                    )
                    self._done(source, pending[source][1])
                else:
                    logger.warning(
                        "dead letter of %s[%d]@%d refused (%s; %d bytes, budget %d);"
                        " sending a minimal one instead",
                        *source,
                        failure.error,
                        failure.size,
                        self._sender.budget,
                    )
                    self._refused[source] = failure.error
                    todo.append(pending[source])
            if not todo:
                break
        if failures:
            raise KafkaUnavailable(
                f"{len(failures)} of {len(pending)} dead-letter messages not delivered: "
                f"{next(iter(failures.values()))}"
            )

    def _untried(self, source: Source) -> bool:
        with self._lock:
            return not (
                source in self._delivered or source in self._in_flight or source in self._failed
            )

    def _done(self, source: Source, rejection: Rejection) -> None:
        with self._lock:
            self._delivered.add(source)
            self._refused.pop(source, None)
        self._sender.metrics.rejected.labels(rejection.reason.value).inc()

    def _produce(
        self, pairs: Sequence[tuple[Record, Rejection]], on_wait: Callable[[], None] | None
    ) -> None:
        """Queue each pair's dead letter (a minimal one if the full one was refused)."""
        sender = self._sender
        for record, rejection in pairs:
            source = _source(record)
            refusal = self._refused.get(source)
            letter = (
                dead_letter(record, rejection, sender.budget)
                if refusal is None
                else minimal_dead_letter(record, rejection, sender.budget, refusal)
            )
            with self._lock:
                self._attempts += 1
                attempt = self._in_flight[source] = self._attempts
            try:
                sender.producer.produce(
                    sender.topic,
                    letter.key,
                    letter.value,
                    letter.headers,
                    on_delivery=self._reporter(source, attempt, rejection, letter.size),
                    on_wait=on_wait,
                )
            except MessageRefused as exc:
                with self._lock:
                    del self._in_flight[source]
                    self._failed[source] = _Failure(str(exc), True, letter.size)
            except BaseException:
                with self._lock:
                    del self._in_flight[source]
                raise

    def _reporter(
        self, source: Source, attempt: int, rejection: Rejection, size: int
    ) -> Callable[[DeliveryReport], None]:
        def on_delivery(report: DeliveryReport) -> None:
            with self._lock:
                if self._in_flight.get(source) != attempt:
                    return  # an attempt given up on already
                del self._in_flight[source]
                if report.error is not None:
                    self._failed[source] = _Failure(report.error, report.refused, size)
                    return
                self._delivered.add(source)
                self._refused.pop(source, None)
            self._sender.metrics.rejected.labels(rejection.reason.value).inc()

        return on_delivery

    def _wait(self, sources: Container[Source], on_wait: Callable[[], None] | None) -> None:
        """Until no dead letter of ``sources`` is in flight, or the flush timeout is up."""
        producer = self._sender.producer
        now = time.monotonic()
        deadline, tick = now + self._sender.flush_timeout, now + WAIT_SLICE_SECONDS
        while True:
            with self._lock:
                if not any(s in sources for s in self._in_flight):
                    return
            now = time.monotonic()
            if now >= deadline:
                producer.purge()  # their reports say so; never carried over
                self._expire(sources)
                return
            # A flush sends what lingers at once; each one short, since the producer may
            # hold the dead letters of the batch being collected too.
            producer.flush(min(deadline - now, FLUSH_SLICE_SECONDS))
            if on_wait is not None and now >= tick:
                tick = now + WAIT_SLICE_SECONDS
                on_wait()

    def _expire(self, sources: Container[Source]) -> None:
        """What is still in flight after a purge failed: its report, if any, is ignored."""
        with self._lock:
            for source in [s for s in self._in_flight if s in sources]:
                del self._in_flight[source]
                self._failed[source] = _Failure("delivery timed out", False, 0)


def open_sender(
    settings: Settings,
    metrics: ConsumerMetrics,
    *,
    on_unreachable: Callable[[str], None] | None = None,
    extra: Mapping[str, Any] | None = None,
    timeout: float = 10.0,
) -> DeadLetterSender:
    """A sender to ``KAFKA_DLQ_TOPIC`` budgeted by the topic's own limit, and its producer.

    Raises ``KafkaUnavailable`` when Kafka does not answer (retry it). The producer's
    batches are bounded by the budget too, so several dead letters batched together
    never exceed what the topic accepts.
    """
    topic = settings.kafka_dlq_topic
    budget = topic_byte_budget(settings, topic, timeout=timeout)
    producer = KafkaProducer(
        settings,
        on_delivery=lambda _: None,  # every message has its own callback
        on_unreachable=on_unreachable,
        max_batch_bytes=batch_bytes(budget),
        extra={"message.timeout.ms": MESSAGE_TIMEOUT_MS} | dict(extra or {}),
    )
    sender = DeadLetterSender(producer, topic, budget, metrics)
    logger.info("dead letters to %s are kept within %d bytes each", topic, sender.budget)
    return sender
