"""Is the consumer getting anywhere? Per-partition lag and stalls, decided without I/O.

``Progress`` keeps, for each partition the consumer owns and has positioned, the
next offset stored in PostgreSQL, when that position last advanced, and where
the partition's log starts and ends as last read from the brokers. From these
it answers two questions:

* lag: messages in the log not yet stored (what can be read minus the stored
  position; a partition with nothing stored yet counts from its log start when
  ``auto.offset.reset`` is earliest, from its end otherwise);
* stalled: which partitions have lag and have not advanced for ``stall_seconds``.
  Each partition is judged on its own, so a consumer that drains some of its
  partitions while others stand still is still seen to stall.

``EndOffsetsPoller`` reads the log ends in a thread of its own, every few
seconds, so the main loop never waits on that request and a broker outage only
makes the figures older.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from heartbeat.errors import TransientError
from heartbeat.kafka import Partition

logger = logging.getLogger(__name__)

# (log start offset, last stable offset) per partition.
Ends = Mapping[Partition, tuple[int, int]]


@dataclass(slots=True)
class _Partition:
    position: int | None  # next offset to store; None: nothing stored yet
    since: float  # monotonic time the position last advanced (or was set)
    ends: tuple[int, int] | None = None


class Progress:
    """Positions, log ends and last advances of the owned partitions."""

    def __init__(self, stall_seconds: float, *, from_start: bool) -> None:
        self.stall_seconds = stall_seconds
        self._from_start = from_start
        self._partitions: dict[Partition, _Partition] = {}

    def track(self, partition: Partition, position: int | None, now: float) -> None:
        """Start following ``partition`` from ``position`` (it was just positioned)."""
        self._partitions[partition] = _Partition(position, now)

    def forget(self, partitions: Iterable[Partition]) -> None:
        for partition in partitions:
            self._partitions.pop(partition, None)

    def tracked(self) -> Mapping[Partition, object]:
        """The partitions followed, for fast membership tests (a live view: do not keep)."""
        return self._partitions

    def partitions(self) -> list[Partition]:
        return sorted(self._partitions)

    def position(self, partition: Partition) -> int | None:
        state = self._partitions.get(partition)
        return None if state is None else state.position

    def positions(self) -> dict[Partition, int]:
        """Every known stored position (for a last commit to Kafka)."""
        return {p: s.position for p, s in self._partitions.items() if s.position is not None}

    def advance(self, offsets: Mapping[Partition, int], now: float) -> list[Partition]:
        """Record positions just stored; returns the partitions that moved forward."""
        moved = []
        for partition, offset in offsets.items():
            state = self._partitions.get(partition)
            if state is None:
                continue  # lost meanwhile: its new owner tracks it
            if state.position is None or offset > state.position:
                state.position = offset
                state.since = now
                moved.append(partition)
        return moved

    def observe(self, ends: Ends) -> None:
        """Take log ends just read from the brokers (partitions not tracked are ignored)."""
        for partition, bounds in ends.items():
            state = self._partitions.get(partition)
            if state is not None:
                state.ends = bounds

    def lag(self, partition: Partition) -> int | None:
        """Messages not yet stored; ``None`` until the log's ends have been read once."""
        state = self._partitions.get(partition)
        if state is None or state.ends is None:
            return None
        low, high = state.ends
        position = state.position
        if position is None:
            position = low if self._from_start else high
        return max(0, high - max(position, low))

    def stalled(self, now: float) -> list[Partition]:
        """Partitions with lag whose position has not advanced for ``stall_seconds``."""
        return [
            partition
            for partition, state in sorted(self._partitions.items())
            if now - state.since >= self.stall_seconds and (self.lag(partition) or 0) > 0
        ]


def describe_stall(
    stalled: list[Partition], stall_seconds: float, lags: Mapping[Partition, int]
) -> str:
    """The /readyz detail and log line for stalled partitions."""
    shown = ", ".join(f"{p.topic}[{p.partition}] lag {lags.get(p, 0)}" for p in stalled[:6])
    more = f" and {len(stalled) - 6} more" if len(stalled) > 6 else ""
    return (
        f"{len(stalled)} partition(s) with lag have not advanced for {stall_seconds:g}s: "
        f"{shown}{more}"
    )


class EndOffsetsPoller:
    """Reads the log ends of the watched partitions every ``interval`` seconds, in a thread."""

    def __init__(
        self,
        read: Callable[[list[Partition], float], Ends],
        *,
        interval: float = 5.0,
        timeout: float = 5.0,
    ) -> None:
        self._read = read
        self._interval = interval
        self._timeout = timeout
        self._watched: tuple[Partition, ...] = ()
        self._latest: dict[Partition, tuple[int, int]] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="end-offsets", daemon=True)

    def watch(self, partitions: Iterable[Partition]) -> None:
        """The partitions to read from now on (the main loop's owned, positioned ones)."""
        self._watched = tuple(sorted(partitions))

    def latest(self) -> dict[Partition, tuple[int, int]]:
        """The ends last read (a new dict each read: safe to use from another thread)."""
        return self._latest

    def start(self) -> EndOffsetsPoller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(self._timeout + 1)

    def poll_once(self) -> None:
        watched = list(self._watched)
        if not watched:
            return
        try:
            self._latest = dict(self._read(watched, self._timeout))
        except TransientError as exc:
            logger.debug("end offsets not read: %s", exc)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.poll_once()
            self._stopping.wait(self._interval)
