"""The small value types the pipeline passes between its modules.

They import nothing of the package, so any module may use them: ``store`` names a
partition or a refused record without importing the Kafka client's module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

Headers = list[tuple[str, bytes]]


class Partition(NamedTuple):
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed message, as the dead-letter paths and ``heartbeat tail`` see it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None
    headers: Headers

    @property
    def source(self) -> Partition:
        return Partition(self.topic, self.partition)


class Message(Protocol):
    """A consumed message as the Kafka client hands it over, before any copy is made.

    The consumer's hot path reads these directly; only a rejected or conflicting
    message becomes a ``Record``.
    """

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def value(self) -> bytes | None: ...
