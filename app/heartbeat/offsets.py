"""`heartbeat offsets reset`: move a stopped consumer group's stored positions.

The consumers resume each partition from ``consumer_offsets`` in PostgreSQL, so that is
what a reset changes (Kafka's own ``kafka-consumer-groups --reset-offsets`` moves only the
offsets committed to Kafka, which the consumers do not read). The group's committed
offsets in Kafka are set to the same values afterwards, so Kafka's lag tools agree; when
that fails, the moves (already made) are shown with one line saying Kafka's were not, exit 1.

A reset is refused while the group has members: a running consumer would go on from
where it is and store its own positions over the new ones. ``--dry-run`` shows the plan.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TextIO

from tabulate import tabulate

from heartbeat.errors import GroupActive, KafkaUnavailable
from heartbeat.kafka import GroupAdmin, Partition
from heartbeat.lag import SELECT_STORED, stored_positions
from heartbeat.store import Store

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED = 0, 1

# Unlike the consumers' upsert, this one may move a position back.
UPSERT_RESET = """
INSERT INTO consumer_offsets AS o (consumer_group, topic, partition, next_offset)
SELECT %(group)s, %(topic)s, p, n
FROM unnest(%(partitions)s::int[], %(offsets)s::bigint[]) AS u(p, n)
ON CONFLICT (consumer_group, topic, partition) DO UPDATE
    SET next_offset = EXCLUDED.next_offset, updated_at = now()
"""


@dataclass(frozen=True, slots=True)
class Target:
    """Where to move: the log start, the end, or the first offset at or after ``at``."""

    kind: Literal["earliest", "latest", "datetime"]
    at: datetime | None = None

    def describe(self) -> str:
        return self.kind if self.at is None else self.at.isoformat()


@dataclass(frozen=True, slots=True)
class Move:
    partition: int
    current: int | None
    new: int


def plan(
    partitions: Sequence[Partition],
    bounds: Mapping[Partition, tuple[int, int]],
    stored: Mapping[int, int],
    target: Target,
    at_offsets: Mapping[Partition, int | None] | None = None,
) -> list[Move]:
    """The new position of every partition; a time past a partition's last record is its end."""
    moves = []
    for p in partitions:
        log_start, end = bounds[p]
        if target.kind == "earliest":
            new = log_start
        elif target.kind == "latest":
            new = end
        else:
            found = (at_offsets or {}).get(p)
            new = end if found is None else min(max(found, log_start), end)
        moves.append(Move(p.partition, stored.get(p.partition), new))
    return moves


def render(
    group: str, topic: str, target: Target, moves: Sequence[Move], *, dry_run: bool, as_json: bool
) -> str:
    if as_json:
        return json.dumps(
            {
                "group": group,
                "topic": topic,
                "to": target.describe(),
                "dry_run": dry_run,
                "partitions": [
                    {"partition": m.partition, "current_offset": m.current, "new_offset": m.new}
                    for m in moves
                ],
            }
        )
    rows = [
        [
            m.partition,
            "-" if m.current is None else m.current,
            m.new,
            "" if m.current is None else f"{m.new - m.current:+d}",
        ]
        for m in moves
    ]
    verb = "would move" if dry_run else "moved"
    head = f"group {group}, topic {topic}: {verb} to {target.describe()}"
    table = tabulate(rows, headers=["partition", "stored offset", "new offset", "change"])
    return f"{head}\n{table}"


def reset(
    store: Store,
    admin: GroupAdmin,
    *,
    group: str,
    topic: str,
    target: Target,
    dry_run: bool,
    as_json: bool,
    out: TextIO,
) -> int:
    state = admin.group(group)
    if state.members:
        noun = "member" if state.members == 1 else "members"
        raise GroupActive(
            f"{group} has {state.members} active {noun}; "
            "stop its consumers before resetting its offsets"
        )
    partitions = admin.partitions(topic)
    bounds = admin.log_bounds(partitions)
    at_offsets = None
    if target.at is not None:
        at_offsets = admin.offsets_at(partitions, int(target.at.timestamp() * 1000))
    rows = store.query(SELECT_STORED, {"group": group, "topic": topic})
    stored = {p: s.offset for p, s in stored_positions(rows).items()}
    moves = plan(partitions, bounds, stored, target, at_offsets)
    if not dry_run:
        params = {
            "group": group,
            "topic": topic,
            "partitions": [m.partition for m in moves],
            "offsets": [m.new for m in moves],
        }
        store.execute([(UPSERT_RESET, params)])
        try:
            admin.commit(group, {Partition(topic, m.partition): m.new for m in moves})
        except KafkaUnavailable as exc:
            # The consumers' positions have moved already: show them, and say what did not.
            print(render(group, topic, target, moves, dry_run=False, as_json=as_json), file=out)
            logger.error(
                "PostgreSQL was reset, so the consumers resume from the new offsets above; "
                "the committed offsets in Kafka were not, so Kafka's lag tools show the old "
                "ones until the consumers commit (run the reset again to set them): %s",
                exc,
            )
            return EXIT_FAILED
    print(render(group, topic, target, moves, dry_run=dry_run, as_json=as_json), file=out)
    return EXIT_OK
