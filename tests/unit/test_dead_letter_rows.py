"""The dead-letter row: what of a refused message is kept, and how it is named."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from heartbeat.dead_letter_rows import (
    MAX_HEADERS_BYTES,
    MAX_KEY_BYTES,
    MAX_PAYLOAD_BYTES,
    Source,
    from_record,
    headers_from_json,
    headers_to_json,
    text,
)
from heartbeat.kafka import Record
from heartbeat.validation import Reason, Rejection

REJECTION = Rejection(Reason.INVALID_JSON, "Expecting value: line 1 column 1 (char 0)")


def record(**changes: object) -> Record:
    fields: dict[str, object] = {
        "topic": "heartbeats",
        "partition": 2,
        "offset": 41,
        "key": b"7",
        "value": b"not json",
        "timestamp_ms": 1_767_268_800_000,
        "headers": [("trace", b"abc")],
    }
    fields.update(changes)
    return Record(**fields)  # type: ignore[arg-type]


def test_a_small_message_is_kept_whole_with_its_source_and_reason():
    letter = from_record(record(), REJECTION, "group-a")
    assert letter.source == Source("heartbeats", 2, 41)
    assert (letter.consumer_group, letter.reason, letter.detail) == (
        "group-a",
        "invalid_json",
        REJECTION.detail,
    )
    assert (letter.key, letter.key_size) == (b"7", 1)
    assert (letter.payload, letter.payload_size, letter.payload_truncated) == (
        b"not json",
        8,
        False,
    )
    assert (letter.headers, letter.header_count) == ([("trace", b"abc")], 1)
    assert letter.kafka_timestamp == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert letter.replayable


@pytest.mark.parametrize(
    ("changes", "payload_kept", "key_kept", "replayable"),
    [
        ({"value": b"x" * MAX_PAYLOAD_BYTES}, MAX_PAYLOAD_BYTES, 1, True),
        ({"value": b"x" * (MAX_PAYLOAD_BYTES + 1)}, MAX_PAYLOAD_BYTES, 1, False),
        ({"key": b"k" * (MAX_KEY_BYTES + 1)}, 8, MAX_KEY_BYTES, False),
        ({"key": b"k" * MAX_KEY_BYTES}, 8, MAX_KEY_BYTES, True),
    ],
)
def test_payload_and_key_are_cut_to_their_bounds_and_a_cut_one_cannot_be_replayed(
    changes, payload_kept, key_kept, replayable
):
    original = record(**changes)
    letter = from_record(original, REJECTION, "g")
    assert len(letter.payload) == payload_kept
    assert letter.payload_size == len(original.value)
    assert letter.payload_truncated is (len(original.value) > MAX_PAYLOAD_BYTES)
    assert len(letter.key) == key_kept
    assert letter.key_size == len(original.key)
    assert letter.replayable is replayable


def test_a_message_without_key_or_value_keeps_nulls_not_empty_bytes():
    letter = from_record(record(key=None, value=None, timestamp_ms=None), REJECTION, "g")
    assert (letter.key, letter.key_size, letter.payload, letter.payload_size) == (
        None,
        None,
        None,
        None,
    )
    assert letter.kafka_timestamp is None
    assert letter.replayable


def test_headers_are_kept_whole_in_order_until_their_budget_is_spent():
    headers = [(f"h{i:03d}", b"v" * 4096) for i in range(116)]
    letter = from_record(record(headers=headers), REJECTION, "g")
    fits = MAX_HEADERS_BYTES // (4 + 4096)
    assert letter.headers == headers[:fits]
    assert letter.header_count == 116
    assert letter.headers_truncated


def test_text_columns_never_receive_nul_or_unencodable_characters():
    assert text("a\x00b\udcffc") == "a\ufffdb?c"
    letter = from_record(
        record(headers=[("x\x00y", b"\x00")]), Rejection(Reason.UNPROCESSABLE, "\x00"), "g"
    )
    assert letter.detail == "\ufffd"
    assert letter.headers == [("x\ufffdy", b"\x00")]


def test_a_producer_chosen_timestamp_out_of_range_is_kept_as_unknown():
    assert from_record(record(timestamp_ms=2**62), REJECTION, "g").kafka_timestamp is None


def test_the_detail_is_cut_to_1024_characters():
    long = Rejection(Reason.UNPROCESSABLE, "é" * 5000)
    assert from_record(record(), long, "g").detail == "é" * 1024


def test_headers_survive_the_json_column_with_repeats_and_binary_values():
    headers = [("trace", b"\x00\xff"), ("trace", b""), ("ümlaut", b"ok")]
    assert headers_from_json(headers_to_json(headers)) == headers


@pytest.mark.parametrize(
    ("text_form", "source"),
    [
        ("heartbeats:0:0", Source("heartbeats", 0, 0)),
        ("heartbeats.v2:5:1234567890123", Source("heartbeats.v2", 5, 1234567890123)),
        ("a:b:3:4", Source("a:b", 3, 4)),
    ],
)
def test_a_source_reads_and_prints_as_topic_partition_offset(text_form, source):
    assert Source.parse(text_form) == source
    assert str(source) == text_form


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "heartbeats",
        "heartbeats:1",
        ":1:2",
        "t:-1:2",
        "t:1:-2",
        "t:x:2",
        "t:1:2.5",
        "t:\u0661:2",
    ],
)
def test_a_malformed_source_is_refused_with_what_is_wrong(bad):
    with pytest.raises(ValueError, match=r"TOPIC:PARTITION:OFFSET|is not a number"):
        Source.parse(bad)
