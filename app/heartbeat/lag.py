"""`heartbeat lag`: how far the consumer group's stored position is behind each partition.

The position that counts is the one in PostgreSQL (``consumer_offsets``, written in the
transaction of each batch), not the offsets committed to Kafka, which follow it and may
lag behind after a crash. The end of a partition is its last stable offset, as a
``read_committed`` reader sees it. A partition with no stored position yet starts where
``KAFKA_AUTO_OFFSET_RESET`` says, and its lag is counted from there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from tabulate import tabulate

from heartbeat.kafka import GroupAdmin, Partition
from heartbeat.store import Store

SELECT_STORED = """
SELECT partition, next_offset, updated_at FROM consumer_offsets
WHERE consumer_group = %(group)s AND topic = %(topic)s
"""


@dataclass(frozen=True, slots=True)
class Stored:
    """A partition's position in PostgreSQL and when it was last written."""

    offset: int
    written_at: datetime


@dataclass(frozen=True, slots=True)
class PartitionLag:
    partition: int
    log_start: int
    end: int
    stored: int | None
    lag: int
    written_at: datetime | None


def stored_positions(rows: Sequence[Mapping[str, Any]]) -> dict[int, Stored]:
    return {row["partition"]: Stored(row["next_offset"], row["updated_at"]) for row in rows}


def compute(
    partitions: Sequence[Partition],
    bounds: Mapping[Partition, tuple[int, int]],
    stored: Mapping[int, Stored],
    auto_offset_reset: Literal["earliest", "latest"],
) -> list[PartitionLag]:
    """Lag per partition: from the stored position (or where a reset starts) to the end.

    A stored position below the log start (retention deleted what it pointed at) reads
    from the log start, so the lag counts only what can still be read.
    """
    rows = []
    for p in partitions:
        log_start, end = bounds[p]
        position = stored.get(p.partition)
        if position is not None:
            start = max(position.offset, log_start)
        else:
            start = log_start if auto_offset_reset == "earliest" else end
        rows.append(
            PartitionLag(
                partition=p.partition,
                log_start=log_start,
                end=end,
                stored=None if position is None else position.offset,
                lag=max(0, end - start),
                written_at=None if position is None else position.written_at,
            )
        )
    return rows


def collect(
    store: Store,
    admin: GroupAdmin,
    *,
    group: str,
    topic: str,
    auto_offset_reset: Literal["earliest", "latest"],
) -> list[PartitionLag]:
    partitions = admin.partitions(topic)
    bounds = admin.log_bounds(partitions)
    stored = stored_positions(store.query(SELECT_STORED, {"group": group, "topic": topic}))
    return compute(partitions, bounds, stored, auto_offset_reset)


def render_json(group: str, topic: str, rows: Sequence[PartitionLag]) -> str:
    return json.dumps(
        {
            "group": group,
            "topic": topic,
            "total_lag": sum(r.lag for r in rows),
            "partitions": [
                {
                    "partition": r.partition,
                    "log_start_offset": r.log_start,
                    "end_offset": r.end,
                    "stored_offset": r.stored,
                    "lag": r.lag,
                    "last_write": None if r.written_at is None else r.written_at.isoformat(),
                }
                for r in rows
            ],
        }
    )


def render_table(group: str, topic: str, rows: Sequence[PartitionLag]) -> str:
    table = [
        [
            r.partition,
            r.end,
            "-" if r.stored is None else r.stored,
            r.lag,
            "never" if r.written_at is None else r.written_at.isoformat(timespec="seconds"),
        ]
        for r in rows
    ]
    table.append(["(all)", sum(r.end for r in rows), "", sum(r.lag for r in rows), ""])
    headers = ["partition", "end offset", "stored offset", "lag", "last write"]
    return f"group {group}, topic {topic}\n" + str(tabulate(table, headers=headers))
