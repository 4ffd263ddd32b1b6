"""The ``dead_letters`` table: a refused message's bounded copy, and the statements on it.

Pure: ``heartbeat.store`` runs the statements, ``heartbeat dlq`` shows and
re-drives the rows. (``heartbeat.deadletter`` is the other copy, on the Kafka
dead-letter topic.) The bounds keep one poison message from making a row too large to
write or read back:

* payload: the first 64 KiB; ``payload_size`` and ``payload_truncated`` say what was cut;
* key: the first 1 KiB; ``key_size`` is the original length;
* headers: whole headers, in order, while names and values total 16 KiB;
  ``header_count`` is how many the message had; kept as a JSON array of
  ``{"name": ..., "value": base64}`` so repeated names and their order survive;
* detail: the first 1,024 characters.

A row whose payload or key was cut cannot be re-driven: what it would send is not
what was refused.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from heartbeat.validation import Rejection

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_KEY_BYTES = 1024
MAX_HEADERS_BYTES = 16 * 1024
MAX_DETAIL_CHARS = 1024


class Source(NamedTuple):
    """Where a message was read: what a dead letter is keyed by."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    @classmethod
    def parse(cls, text: str) -> Source:
        """``TOPIC:PARTITION:OFFSET``; ``ValueError`` says what is wrong."""
        parts = text.rsplit(":", 2)
        if len(parts) != 3 or not parts[0]:
            raise ValueError(f"{text!r} is not TOPIC:PARTITION:OFFSET")
        topic, partition, offset = parts
        if not (partition.isascii() and partition.isdigit()):
            raise ValueError(f"{text!r}: partition {partition!r} is not a number >= 0")
        if not (offset.isascii() and offset.isdigit()):
            raise ValueError(f"{text!r}: offset {offset!r} is not a number >= 0")
        return cls(topic, int(partition), int(offset))


class RefusedMessage(Protocol):
    """What of a consumed message a dead letter keeps (``heartbeat.kafka.Record`` has it)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp_ms(self) -> int | None: ...
    @property
    def headers(self) -> list[tuple[str, bytes]]: ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    source: Source
    consumer_group: str
    reason: str
    detail: str
    key: bytes | None
    key_size: int | None
    headers: list[tuple[str, bytes]]
    header_count: int
    payload: bytes | None
    payload_size: int | None
    payload_truncated: bool
    kafka_timestamp: datetime | None
    received_at: datetime | None = None  # set by the database
    redriven_at: datetime | None = None

    @property
    def key_truncated(self) -> bool:
        return self.key is not None and self.key_size is not None and len(self.key) < self.key_size

    @property
    def headers_truncated(self) -> bool:
        return len(self.headers) < self.header_count

    @property
    def replayable(self) -> bool:
        """Whether re-driving it would send exactly the key and payload that were refused."""
        return not self.payload_truncated and not self.key_truncated


def from_record(record: RefusedMessage, rejection: Rejection, group: str) -> DeadLetter:
    """The bounded copy of a refused record."""
    value, key = record.value, record.key
    kept: list[tuple[str, bytes]] = []
    budget = MAX_HEADERS_BYTES
    for name, header_value in record.headers:
        size = len(name.encode("utf-8", "replace")) + len(header_value)
        if size > budget:
            break
        budget -= size
        kept.append((text(name), header_value))
    return DeadLetter(
        source=Source(record.topic, record.partition, record.offset),
        consumer_group=group,
        reason=rejection.reason.value,
        detail=text(rejection.detail[:MAX_DETAIL_CHARS]),
        key=None if key is None else key[:MAX_KEY_BYTES],
        key_size=None if key is None else len(key),
        headers=kept,
        header_count=len(record.headers),
        payload=None if value is None else value[:MAX_PAYLOAD_BYTES],
        payload_size=None if value is None else len(value),
        payload_truncated=value is not None and len(value) > MAX_PAYLOAD_BYTES,
        kafka_timestamp=_instant(record.timestamp_ms),
    )


def _instant(timestamp_ms: int | None) -> datetime | None:
    if timestamp_ms is None:
        return None
    try:
        return datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):  # a producer may set any number
        return None


def text(value: str) -> str:
    """``value`` as PostgreSQL text can hold it: valid UTF-8, no NUL."""
    return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


def headers_to_json(headers: list[tuple[str, bytes]]) -> str:
    """Headers as the ``headers`` column keeps them: ``[{"name": ..., "value": base64}]``."""
    return json.dumps(
        [{"name": name, "value": base64.b64encode(value).decode()} for name, value in headers]
    )


def headers_from_json(document: Any) -> list[tuple[str, bytes]]:
    """The headers of a row (psycopg gives jsonb as Python objects)."""
    if isinstance(document, str | bytes):
        document = json.loads(document)
    return [(str(h["name"]), base64.b64decode(h.get("value") or "")) for h in document]


# --- the table's statements (heartbeat.store runs them) ----------------------------

INSERT = """
INSERT INTO dead_letters (
    topic, partition, "offset", consumer_group, reason, detail, key, key_size,
    headers, header_count, payload, payload_size, payload_truncated, kafka_timestamp
)
SELECT t, p, o, %(group)s, r, d, k, ks, h, hc, v, vs, vt, ts
FROM unnest(
    %(topics)s::text[], %(partitions)s::int[], %(offsets)s::bigint[], %(reasons)s::text[],
    %(details)s::text[], %(keys)s::bytea[], %(key_sizes)s::int[], %(headers)s::jsonb[],
    %(header_counts)s::int[], %(payloads)s::bytea[], %(payload_sizes)s::int[],
    %(truncated)s::boolean[], %(timestamps)s::timestamptz[]
) AS u(t, p, o, r, d, k, ks, h, hc, v, vs, vt, ts)
ON CONFLICT (topic, partition, "offset") DO NOTHING
"""
COLUMNS = """topic, partition, "offset", consumer_group, reason, detail, key, key_size,
    headers, header_count, payload, payload_size, payload_truncated, kafka_timestamp,
    received_at, redriven_at"""
COUNT = """
SELECT reason, count(*), count(redriven_at) FROM dead_letters
GROUP BY reason ORDER BY count(*) DESC, reason
"""
# A NULL reason is any reason, NULL sources are any source, a NULL limit is none.
WHERE = """
WHERE (%(reason)s::text IS NULL OR reason = %(reason)s)
  AND (%(topics)s::text[] IS NULL OR (topic, partition, "offset") IN (
      SELECT * FROM unnest(%(topics)s::text[], %(partitions)s::int[], %(offsets)s::bigint[])))
  AND (NOT %(pending)s OR redriven_at IS NULL)
"""
NEWEST = f"""
SELECT {COLUMNS} FROM dead_letters {WHERE}
ORDER BY received_at DESC, topic, partition, "offset" DESC
LIMIT %(limit)s
"""
IN_ORDER = f"""
SELECT {COLUMNS} FROM dead_letters {WHERE}
ORDER BY topic, partition, "offset"
LIMIT %(limit)s
"""
MARK_REDRIVEN = """
UPDATE dead_letters SET redriven_at = now()
WHERE (topic, partition, "offset") IN (
    SELECT * FROM unnest(%(topics)s::text[], %(partitions)s::int[], %(offsets)s::bigint[]))
"""


def source_params(sources: Sequence[Source] | None) -> dict[str, list[Any] | None]:
    if sources is None:
        return {"topics": None, "partitions": None, "offsets": None}
    return {
        "topics": [s.topic for s in sources],
        "partitions": [s.partition for s in sources],
        "offsets": [s.offset for s in sources],
    }


def insert_params(group: str, letters: Sequence[DeadLetter]) -> dict[str, Any]:
    return {
        "group": group,
        **source_params([d.source for d in letters]),
        "reasons": [d.reason for d in letters],
        "details": [d.detail for d in letters],
        "keys": [d.key for d in letters],
        "key_sizes": [d.key_size for d in letters],
        "headers": [headers_to_json(d.headers) for d in letters],
        "header_counts": [d.header_count for d in letters],
        "payloads": [d.payload for d in letters],
        "payload_sizes": [d.payload_size for d in letters],
        "truncated": [d.payload_truncated for d in letters],
        "timestamps": [d.kafka_timestamp for d in letters],
    }


def from_row(row: tuple[Any, ...]) -> DeadLetter:
    (topic, partition, offset, group, reason, detail, key, key_size, headers, header_count,
     payload, payload_size, truncated, kafka_timestamp, received_at, redriven_at) = row  # fmt: skip
    return DeadLetter(
        source=Source(topic, partition, offset),
        consumer_group=group,
        reason=reason,
        detail=detail,
        key=None if key is None else bytes(key),
        key_size=key_size,
        headers=headers_from_json(headers),
        header_count=header_count,
        payload=None if payload is None else bytes(payload),
        payload_size=payload_size,
        payload_truncated=truncated,
        kafka_timestamp=kafka_timestamp,
        received_at=received_at,
        redriven_at=redriven_at,
    )
