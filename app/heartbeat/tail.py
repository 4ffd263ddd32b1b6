"""`heartbeat tail`: print messages of a topic (the dead-letter topic too) with their headers."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from heartbeat.kafka import Record


def _text(value: bytes | None) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "backslashreplace")


def as_dict(record: Record) -> dict[str, object]:
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": None
        if record.timestamp_ms is None
        else datetime.fromtimestamp(record.timestamp_ms / 1000, UTC).isoformat(),
        "key": _text(record.key),
        "headers": {name: _text(value) for name, value in record.headers},
        "value": _text(record.value),
    }


def render(record: Record, *, as_json: bool) -> str:
    data = as_dict(record)
    if as_json:
        return json.dumps(data)
    headers = " ".join(f"{k}={v}" for k, v in data["headers"].items())  # type: ignore[attr-defined]
    return (
        f"{record.topic}[{record.partition}]@{record.offset} key={data['key']}"
        + (f" [{headers}]" if headers else "")
        + f" {data['value']}"
    )
