"""Decide what a consumed message is: a reading to store, or a rejection with a reason.

Pure functions only; the consumer does the I/O. The rules:

* rejected: payload not UTF-8, not JSON, not a JSON object; a field missing or of
  the wrong type; ``customer_id`` < 1; ``heart_rate`` outside 30-220; a timestamp
  that is not an RFC 3339 date-time, has no offset, or lies further in the future
  than allowed.
* stored and flagged: ``heart_rate`` below 45 (``low``) or above 180 (``high``).
* dead-lettered once the database has been asked: a reading for a (customer,
  instant) already stored with another heart rate (``conflicting_reading``).

Timestamps are RFC 3339 ``date-time`` only: ``YYYY-MM-DD``, then ``T``, ``t`` or a
space, ``HH:MM:SS``, an optional ``.`` fraction of any length, then ``Z``, ``z`` or
``+HH:MM`` / ``-HH:MM``. A fraction finer than a microsecond is truncated (never
rounded), which is what PostgreSQL's ``timestamptz`` then stores exactly.

The consumer checks most messages on a fast path (``heartbeat.batch``): msgspec decodes
the JSON straight into ``Wire`` (exactly three fields, integers that are not booleans,
the ranges checked in C), then the timestamp goes through the same pattern and parser
as here. Whatever fails any step of it is judged again by ``validate``, which alone
decides the reason, so every rejection reads the same whichever path met it first.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated

import msgspec

VALID_MIN_BPM = 30
VALID_MAX_BPM = 220
LOW_BPM = 45
HIGH_BPM = 180
MAX_CUSTOMER_ID = 2**63 - 1  # PostgreSQL bigint
FIELDS = ("customer_id", "timestamp", "heart_rate")

# RFC 3339 section 5.6, checked for shape here; ``fromisoformat`` then checks the
# calendar (Feb 30, month 13) and refuses a leap second, which datetime cannot hold.
# ASCII: ``\d`` must not match other scripts' digits. The numeric offset comes first
# in its alternation because it is the common case (about 0.25 us per match).
_DATE = r"\d{4}-\d\d-\d\d"
_TIME = r"(?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|60)(?:\.\d+)?"
_OFFSET = r"(?:[+-](?:[01]\d|2[0-3]):[0-5]\d|[Zz])"
_RFC3339 = re.compile(f"{_DATE}[Tt ]{_TIME}{_OFFSET}", re.ASCII)
RFC3339 = _RFC3339
_WITHOUT_OFFSET = re.compile(f"{_DATE}[Tt ]{_TIME}", re.ASCII)


class Reason(StrEnum):
    """Why a message was rejected; the dead-letter ``reason`` header and metric label."""

    EMPTY_PAYLOAD = "empty_payload"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    INVALID_TYPE = "invalid_type"
    INVALID_CUSTOMER_ID = "invalid_customer_id"
    HEART_RATE_OUT_OF_RANGE = "heart_rate_out_of_range"
    INVALID_TIMESTAMP = "invalid_timestamp"
    TIMESTAMP_WITHOUT_TIMEZONE = "timestamp_without_timezone"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    # Valid alone, but its customer and instant are already stored with another heart rate
    # (a device or clock fault): decided by the store, not here.
    CONFLICTING_READING = "conflicting_reading"
    # Validation itself failed (a defect): the message is kept, not lost, and not retried.
    UNPROCESSABLE = "unprocessable"


class Wire(msgspec.Struct, forbid_unknown_fields=True):
    """The shape of a well-formed reading, for the fast path: nothing more, nothing less.

    No other field is allowed, so no byte the fast path skipped unread can hide what
    ``validate`` would refuse (invalid UTF-8, a number too large, nesting too deep).
    """

    customer_id: Annotated[int, msgspec.Meta(ge=1, le=MAX_CUSTOMER_ID)]
    timestamp: str
    heart_rate: Annotated[int, msgspec.Meta(ge=VALID_MIN_BPM, le=VALID_MAX_BPM)]


decode_wire = msgspec.json.Decoder(Wire).decode

# timestamptz's own origin: a reading's instant travels as microseconds since it.
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
# The instants ``validate`` accepts: year 1 to 9999 in UTC.
MIN_MICROS = (datetime.min.replace(tzinfo=UTC) - PG_EPOCH) // MICROSECOND


def to_micros(ts: datetime) -> int:
    """An aware instant as microseconds since 2000-01-01 UTC."""
    return (ts - PG_EPOCH) // MICROSECOND


def from_micros(micros: int) -> datetime:
    """The UTC instant ``micros`` microseconds after 2000-01-01 UTC."""
    return PG_EPOCH + micros * MICROSECOND


class Anomaly(StrEnum):
    """A stored reading outside the normal band."""

    LOW = "low"
    HIGH = "high"


@dataclass(frozen=True, slots=True)
class Reading:
    customer_id: int
    ts: datetime
    heart_rate: int
    anomaly: Anomaly | None


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: Reason
    detail: str


def classify(heart_rate: int) -> Anomaly | None:
    """The anomaly flag of a valid heart rate."""
    if heart_rate < LOW_BPM:
        return Anomaly.LOW
    if heart_rate > HIGH_BPM:
        return Anomaly.HIGH
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(
    payload: bytes | None, *, now: datetime, max_future_skew: timedelta
) -> Reading | Rejection:
    """Turn one message value into a ``Reading`` or a ``Rejection``."""
    if not payload:
        return Rejection(Reason.EMPTY_PAYLOAD, "message has no value")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(Reason.INVALID_UTF8, f"byte {exc.start} is not UTF-8")
    try:
        document = json.loads(text)
    except ValueError as exc:
        return Rejection(Reason.INVALID_JSON, str(exc))
    except RecursionError:
        return Rejection(Reason.INVALID_JSON, "JSON nested too deeply")
    if not isinstance(document, dict):
        return Rejection(Reason.NOT_AN_OBJECT, f"payload is a JSON {type(document).__name__}")

    missing = [name for name in FIELDS if name not in document]
    if missing:
        return Rejection(Reason.MISSING_FIELD, "missing " + ", ".join(missing))

    customer_id = document["customer_id"]
    heart_rate = document["heart_rate"]
    timestamp = document["timestamp"]
    if not _is_int(customer_id):
        return Rejection(
            Reason.INVALID_TYPE, f"customer_id must be an integer, got {_kind(customer_id)}"
        )
    if not _is_int(heart_rate):
        return Rejection(
            Reason.INVALID_TYPE, f"heart_rate must be an integer, got {_kind(heart_rate)}"
        )
    if not isinstance(timestamp, str):
        return Rejection(Reason.INVALID_TYPE, f"timestamp must be a string, got {_kind(timestamp)}")

    if not 1 <= customer_id <= MAX_CUSTOMER_ID:
        return Rejection(
            Reason.INVALID_CUSTOMER_ID, f"customer_id {customer_id} is not in 1..2^63-1"
        )
    if not VALID_MIN_BPM <= heart_rate <= VALID_MAX_BPM:
        return Rejection(
            Reason.HEART_RATE_OUT_OF_RANGE,
            f"heart_rate {heart_rate} is outside {VALID_MIN_BPM}-{VALID_MAX_BPM}",
        )

    if _RFC3339.fullmatch(timestamp) is None:
        if _WITHOUT_OFFSET.fullmatch(timestamp) is not None:
            return Rejection(
                Reason.TIMESTAMP_WITHOUT_TIMEZONE, f"timestamp {timestamp[:64]!r} has no timezone"
            )
        return Rejection(
            Reason.INVALID_TIMESTAMP,
            f"timestamp {timestamp[:64]!r} is not an RFC 3339 date-time"
            " (YYYY-MM-DDTHH:MM:SS[.fraction] then Z or +HH:MM)",
        )
    try:
        # fromisoformat takes "Z" but not RFC 3339's equally valid "z".
        ts = datetime.fromisoformat(timestamp if timestamp[-1] != "z" else timestamp[:-1] + "Z")
    except ValueError as exc:
        return Rejection(
            Reason.INVALID_TIMESTAMP, f"timestamp {timestamp[:64]!r} is not a valid instant: {exc}"
        )
    try:
        ts = ts.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 falls before year 1 in UTC
        return Rejection(Reason.INVALID_TIMESTAMP, f"timestamp {timestamp[:64]!r} is out of range")
    if ts > now + max_future_skew:
        return Rejection(
            Reason.TIMESTAMP_IN_FUTURE,
            f"timestamp {ts.isoformat()} is more than {max_future_skew.total_seconds():g}s ahead",
        )

    return Reading(customer_id, ts, heart_rate, classify(heart_rate))


def judge(
    payload: bytes | None, *, now: datetime, max_future_skew: timedelta
) -> Reading | Rejection:
    """``validate``, and never an exception: a message that makes validation itself fail
    is rejected as ``unprocessable`` rather than stopping the partition for good."""
    try:
        return validate(payload, now=now, max_future_skew=max_future_skew)
    except Exception as exc:  # a defect in validate; logged by the caller via the rejection
        return Rejection(Reason.UNPROCESSABLE, f"{type(exc).__name__}: {exc}"[:512])


def conflicting_reading(reading: Reading, stored_heart_rate: int) -> Rejection:
    """The rejection of a reading whose customer and instant are stored with another rate."""
    return Rejection(
        Reason.CONFLICTING_READING,
        f"customer {reading.customer_id} at {format_instant(reading.ts)} already stored with"
        f" heart_rate {stored_heart_rate}; this reading says {reading.heart_rate}",
    )


def format_instant(ts: datetime) -> str:
    """An instant as RFC 3339 in UTC with ``Z``, microseconds only when there are some."""
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )
