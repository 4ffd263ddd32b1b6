"""What `heartbeat maintain` should do, decided from what it found: pure, no I/O.

Three tables are range-partitioned on time: ``heartbeats`` on ``ts`` (PARTITION_INTERVAL,
kept RAW_RETENTION_DAYS), ``heartbeat_minutes`` on ``minute`` (a day each, kept
ROLLUP_RETENTION_DAYS) and ``heartbeat_hours`` on ``hour`` (a week each, kept
HOURLY_ROLLUP_RETENTION_DAYS). For each, ``plan`` compares the partitions there with the ones
wanted and returns the steps:

* ``Create`` the partitions from the current one to PARTITION_AHEAD_DAYS ahead, and
  one for every span the default partition holds unexpired rows for (a reading from
  before the partitions were made, or from further ahead). Whatever rows of its span
  the default partition holds move in as it is created. Where a
  wanted span is partly covered already (the interval was changed), only the gaps
  are created, so partitions never overlap.
* ``Drop`` every partition wholly before the expiry: the start of the span holding
  ``now - retention``. At least the retention is kept, at most one span more.
* ``Purge`` the default partition's rows before the expiry (a few strays; the only
  rows ever deleted one by one).

Bounds are UTC; a day starts at 00:00 UTC and a week on Monday.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Literal

Interval = Literal["hour", "day", "week"]
STEPS: dict[Interval, timedelta] = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}
# Strays in the default partition are looked at by the hour.
STRAY_GRAIN = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
# A rollup statement recomputes at most this much time of readings...
ROLLUP_SPAN = timedelta(minutes=10)
# ... and an hourly one at most this much time of per-minute rollups.
HOURLY_ROLLUP_SPAN = timedelta(hours=2)
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")


@dataclass(frozen=True, slots=True)
class Managed:
    """A partitioned table maintenance keeps."""

    table: str
    column: str  # the partition key, a timestamptz
    interval: Interval
    retention: timedelta

    def __post_init__(self) -> None:
        for name in (self.table, self.column):
            if not _IDENTIFIER.match(name):
                raise ValueError(f"not a plain lower-case SQL name: {name!r}")

    @property
    def default(self) -> str:
        return f"{self.table}_default"


@dataclass(frozen=True, slots=True)
class Partition:
    """A partition found, with its bounds (None: MINVALUE or MAXVALUE)."""

    name: str
    lower: datetime | None
    upper: datetime | None


@dataclass(frozen=True, slots=True)
class Observed:
    partitions: tuple[Partition, ...]
    default: str | None  # the default partition's name, if there is one
    strays: tuple[datetime, ...] = ()  # hours (UTC) the default partition holds rows in


@dataclass(frozen=True, slots=True)
class Create:
    table: Managed
    name: str
    lower: datetime
    upper: datetime


@dataclass(frozen=True, slots=True)
class Drop:
    table: Managed
    name: str
    upper: datetime | None


@dataclass(frozen=True, slots=True)
class Purge:
    table: Managed
    default: str
    before: datetime


@dataclass(frozen=True, slots=True)
class Plan:
    expiry: datetime  # everything before it is past the retention
    creates: tuple[Create, ...] = ()
    drops: tuple[Drop, ...] = ()
    purge: Purge | None = None

    @property
    def empty(self) -> bool:
        return not (self.creates or self.drops or self.purge)


def floor(moment: datetime, interval: Interval) -> datetime:
    """The start of the span of ``interval`` holding ``moment``, in UTC."""
    utc = moment.astimezone(UTC)
    if interval == "hour":
        return utc.replace(minute=0, second=0, microsecond=0)
    day = datetime.combine(utc.date(), time(), tzinfo=UTC)
    if interval == "day":
        return day
    return day - timedelta(days=day.weekday())


def expiry(now: datetime, interval: Interval, retention: timedelta) -> datetime:
    return floor(now - retention, interval)


def partition_name(table: str, lower: datetime) -> str:
    """``<table>_pYYYYMMDD``, with ``_HHMM`` when the span does not start at midnight."""
    utc = lower.astimezone(UTC)
    suffix = "" if utc.time() == time() else utc.strftime("_%H%M")
    return f"{table}_p{utc:%Y%m%d}{suffix}"


def gaps(
    lower: datetime, upper: datetime, taken: Iterable[Partition]
) -> list[tuple[datetime, datetime]]:
    """The parts of [lower, upper) no partition covers."""
    pieces = [(lower, upper)]
    for partition in taken:
        low = partition.lower or datetime.min.replace(tzinfo=UTC)
        high = partition.upper or datetime.max.replace(tzinfo=UTC)
        pieces = [
            part
            for start, end in pieces
            for part in ((start, min(end, low)), (max(start, high), end))
            if part[0] < part[1]
        ]
    return pieces


def plan(managed: Managed, observed: Observed, *, now: datetime, ahead: timedelta) -> Plan:
    step = STEPS[managed.interval]
    cutoff = expiry(now, managed.interval, managed.retention)
    wanted: set[datetime] = set()
    start = floor(now, managed.interval)
    while start < now + ahead:
        wanted.add(start)
        start += step
    live_strays = [hour for hour in observed.strays if hour + STRAY_GRAIN > cutoff]
    wanted.update(floor(hour, managed.interval) for hour in live_strays)

    creates: list[Create] = []
    taken = list(observed.partitions)
    for lower in sorted(wanted):
        for low, high in gaps(lower, lower + step, taken):
            if high <= cutoff:
                continue
            created = Create(managed, partition_name(managed.table, low), low, high)
            creates.append(created)
            taken.append(Partition(created.name, low, high))

    expired = [p for p in observed.partitions if p.upper is not None and p.upper <= cutoff]
    drops = tuple(Drop(managed, p.name, p.upper) for p in sorted(expired, key=_upper))
    purge = None
    if observed.default and any(hour < cutoff for hour in observed.strays):
        purge = Purge(managed, observed.default, cutoff)
    return Plan(cutoff, tuple(creates), drops, purge)


def _upper(partition: Partition) -> datetime:
    return partition.upper or datetime.max.replace(tzinfo=UTC)


def ended_hours(hours: Sequence[datetime], now: datetime) -> list[datetime]:
    """The pending hours that are over: the current one is rolled up once it ends."""
    current = floor(now, "hour")
    return [hour for hour in hours if hour < current]


def rollup_chunks(
    starts: Sequence[datetime], span: timedelta = ROLLUP_SPAN, grain: timedelta = MINUTE
) -> list[tuple[datetime, datetime]]:
    """Pending minutes (or hours: ``grain``) grouped into [lower, upper) ranges no longer
    than ``span``."""
    chunks: list[tuple[datetime, datetime]] = []
    for start in sorted(set(starts)):
        if chunks and start + grain - chunks[-1][0] <= span:
            chunks[-1] = (chunks[-1][0], start + grain)
        else:
            chunks.append((start, start + grain))
    return chunks
