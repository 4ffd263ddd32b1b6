"""Pure parts of the consumer (its dead letters: test_deadletter.py)."""

from heartbeat.consumer import next_offsets
from heartbeat.kafka import Partition, Record


def record(partition: int, offset: int, headers=None) -> Record:
    return Record("t", partition, offset, b"1", b"{}", None, headers or [])


def test_next_offsets_are_one_past_the_highest_offset_of_each_partition():
    batch = [record(0, 5), record(1, 9), record(0, 7), record(0, 6)]
    assert next_offsets(batch) == {Partition("t", 0): 8, Partition("t", 1): 10}
