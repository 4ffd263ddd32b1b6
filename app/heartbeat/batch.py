"""The batch being collected: per partition, its readings as columns, its rejections, its end.

Pure bookkeeping, no I/O. ``Batch.add`` is the consumer's hot loop: for each message it
makes no object of its own, only three integers appended to its partition's columns
(customer, instant in microseconds since 2000-01-01 UTC, heart rate) and a reference to
the message, kept in case the store finds the reading conflicting. A message that is
not a well-formed reading on the fast path (see ``heartbeat.validation``) is judged by
``judge``, which decides its reason, or keeps it as a reading after all.

Messages arrive in runs of one partition, so the partition is looked up once per run.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from heartbeat.types import Message, Partition
from heartbeat.validation import (
    MICROSECOND,
    MIN_MICROS,
    PG_EPOCH,
    RFC3339,
    Reading,
    Rejection,
    classify,
    decode_wire,
    from_micros,
    judge,
    to_micros,
)

_fullmatch = RFC3339.fullmatch
_fromisoformat = datetime.fromisoformat
_DECODE_ERRORS = (msgspec.DecodeError, TypeError)


class PartitionBatch:
    """One partition's share of a batch."""

    __slots__ = (
        "customer_ids",
        "heart_rates",
        "micros",
        "next_offset",
        "partition",
        "rejected",
        "sources",
    )

    def __init__(self, partition: Partition) -> None:
        self.partition = partition
        self.next_offset = -1
        self.customer_ids: list[int] = []
        self.micros: list[int] = []
        self.heart_rates: list[int] = []
        self.sources: list[Message] = []  # the message of each reading
        self.rejected: list[tuple[Message, Rejection]] = []

    def __len__(self) -> int:
        return len(self.sources) + len(self.rejected)


@dataclass(frozen=True, slots=True)
class Columns:
    """A batch's readings, every partition's in turn, as the store takes them."""

    customer_ids: list[int]
    micros: list[int]
    heart_rates: list[int]
    sources: list[Message]

    def __len__(self) -> int:
        return len(self.sources)

    def reading(self, index: int) -> Reading:
        """The ``Reading`` of one of them (only for the rare one the store must name)."""
        rate = self.heart_rates[index]
        return Reading(
            self.customer_ids[index], from_micros(self.micros[index]), rate, classify(rate)
        )


class Batch:
    """Messages collected for one transaction, by partition."""

    def __init__(self, max_future_skew: timedelta) -> None:
        self._skew = max_future_skew
        self._skew_micros = max_future_skew // timedelta(microseconds=1)
        self._parts: dict[Partition, PartitionBatch] = {}
        self.size = 0  # messages, readings and rejections alike
        # Moves on whenever messages are added or partitions dropped, so what was
        # computed from the batch (``heartbeat.writer``'s packed rows) can tell it is stale.
        self.revision = 0
        self._unseen: list[tuple[PartitionBatch, tuple[Message, Rejection]]] = []

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[PartitionBatch]:
        return iter(self._parts.values())

    def add(
        self, messages: Sequence[Message], readable: Container[Partition], now: datetime
    ) -> int:
        """Take ``messages`` of the ``readable`` partitions; how many were taken."""
        limit = to_micros(now) + self._skew_micros
        parts = self._parts
        part: PartitionBatch | None = None
        topic: str | None = None
        number: int | None = None
        cids = micros = rates = sources = None
        last: Message | None = None
        taken = 0
        for message in messages:
            if message.partition() != number or message.topic() != topic:
                if part is not None and last is not None:
                    part.next_offset = max(part.next_offset, (last.offset() or 0) + 1)
                topic, number = message.topic(), message.partition()
                key = Partition(topic or "", number or 0)
                if key not in readable:
                    part = None
                    last = None
                    continue
                part = parts.get(key)
                if part is None:
                    part = parts[key] = PartitionBatch(key)
                cids, micros, rates, sources = (
                    part.customer_ids,
                    part.micros,
                    part.heart_rates,
                    part.sources,
                )
            elif part is None:
                continue
            last = message
            taken += 1
            value = message.value()
            try:
                wire = decode_wire(value)  # type: ignore[arg-type]
                if _fullmatch(wire.timestamp) is not None:
                    us = (_fromisoformat(wire.timestamp) - PG_EPOCH) // MICROSECOND
                    if MIN_MICROS <= us <= limit:
                        cids.append(wire.customer_id)  # type: ignore[union-attr]
                        micros.append(us)  # type: ignore[union-attr]
                        rates.append(wire.heart_rate)  # type: ignore[union-attr]
                        sources.append(message)  # type: ignore[union-attr]
                        continue
            except (*_DECODE_ERRORS, ValueError):
                pass
            verdict = judge(value, now=now, max_future_skew=self._skew)
            if isinstance(verdict, Reading):
                cids.append(verdict.customer_id)  # type: ignore[union-attr]
                micros.append(to_micros(verdict.ts))  # type: ignore[union-attr]
                rates.append(verdict.heart_rate)  # type: ignore[union-attr]
                sources.append(message)  # type: ignore[union-attr]
            else:
                part.rejected.append((message, verdict))
                self._unseen.append((part, part.rejected[-1]))
        if part is not None and last is not None:
            part.next_offset = max(part.next_offset, (last.offset() or 0) + 1)
        self.size += taken
        self.revision += 1
        return taken

    def drop(self, partitions: Iterable[Partition]) -> int:
        """Leave ``partitions`` out (revoked: their new owner reads them); messages dropped."""
        dropped = 0
        for partition in partitions:
            part = self._parts.pop(partition, None)
            if part is not None:
                dropped += len(part)
                self.revision += 1
        self.size -= dropped
        return dropped

    def keep(self, readable: Container[Partition]) -> int:
        """Leave out every partition not in ``readable``; messages dropped."""
        return self.drop([p for p in self._parts if p not in readable])

    def next_offsets(self) -> dict[Partition, int]:
        """For each partition, the offset after its last message in the batch."""
        return {p: part.next_offset for p, part in self._parts.items() if part.next_offset >= 0}

    def rejections(self) -> list[tuple[Message, Rejection]]:
        return [pair for part in self._parts.values() for pair in part.rejected]

    def new_rejections(self) -> list[tuple[Message, Rejection]]:
        """The rejections added since the last call, of the partitions still in the batch."""
        unseen, self._unseen = self._unseen, []
        return [pair for part, pair in unseen if self._parts.get(part.partition) is part]

    def columns(self) -> Columns:
        parts = list(self._parts.values())
        if len(parts) == 1:
            (only,) = parts
            return Columns(only.customer_ids, only.micros, only.heart_rates, only.sources)
        columns = Columns([], [], [], [])
        for part in parts:
            columns.customer_ids.extend(part.customer_ids)
            columns.micros.extend(part.micros)
            columns.heart_rates.extend(part.heart_rates)
            columns.sources.extend(part.sources)
        return columns
