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


def test_an_oversized_rejected_message_is_cut_to_fit_and_says_so():
    from heartbeat.consumer import DLQ_MAX_KEY_BYTES, DLQ_MAX_VALUE_BYTES, dead_letter_message

    big = Record("t", 0, 7, b"k" * 5000, b"x" * 2_000_000, None, [])
    key, value, headers = dead_letter_message(big, Rejection(Reason.INVALID_JSON, "too big"))
    found = dict(headers)
    assert len(value) == DLQ_MAX_VALUE_BYTES
    assert len(key) == DLQ_MAX_KEY_BYTES
    assert found["truncated"] == b"value"
    assert found["original_size"] == b"2000000"
    assert found["original_key_size"] == b"5000"


def test_a_small_rejected_message_goes_out_unchanged():
    from heartbeat.consumer import dead_letter_message

    small = record(1, 3)
    key, value, headers = dead_letter_message(small, Rejection(Reason.INVALID_JSON, "x"))
    assert (key, value) == (small.key, small.value)
    assert "truncated" not in dict(headers)


def test_lag_counts_from_the_position_stored_in_postgresql_even_before_any_write():
    from heartbeat.consumer import ConsumerApp
    from heartbeat.metrics import ConsumerMetrics, new_registry
    from heartbeat.server import Health
    from heartbeat.settings import Settings

    registry = new_registry(process_collectors=False)
    app = ConsumerApp(
        Settings(_env_file=None),
        store=None,  # type: ignore[arg-type]  # not reached: no I/O in this path
        metrics=ConsumerMetrics(registry),
        health=Health((), 60),
    )
    stored, fresh, foreign = Partition("t", 0), Partition("t", 1), Partition("t", 2)
    app._owned = {stored, fresh}
    app._positions = {stored: 40, fresh: None}
    app._on_lag({stored: (0, 100), fresh: (10, 25), foreign: (0, 999)})

    def lag(p: Partition) -> float | None:
        return registry.get_sample_value(
            "heartbeat_consumer_lag", {"topic": p.topic, "partition": str(p.partition)}
        )

    assert lag(stored) == 60  # 100 readable, 40 stored
    assert lag(fresh) == 15  # nothing stored yet: all from the log start (earliest)
    assert lag(foreign) is None  # not ours
