"""Pure parts of the consumer: batch offsets and dead-letter headers."""

from heartbeat.consumer import dead_letter_headers, next_offsets
from heartbeat.kafka import Partition, Record
from heartbeat.validation import Reason, Rejection


def record(partition: int, offset: int, headers=None) -> Record:
    return Record("t", partition, offset, b"1", b"{}", None, headers or [])


def test_next_offsets_are_one_past_the_highest_offset_of_each_partition():
    batch = [record(0, 5), record(1, 9), record(0, 7), record(0, 6)]
    assert next_offsets(batch) == {Partition("t", 0): 8, Partition("t", 1): 10}


def test_dead_letter_headers_carry_reason_detail_and_source():
    headers = dict(
        dead_letter_headers(
            record(3, 42, [("trace", b"abc")]), Rejection(Reason.INVALID_JSON, "Expecting value")
        )
    )
    assert headers["reason"] == b"invalid_json"
    assert headers["error"] == b"Expecting value"
    assert headers["source_topic"] == b"t"
    assert headers["source_partition"] == b"3"
    assert headers["source_offset"] == b"42"
    assert headers["original_trace"] == b"abc"
