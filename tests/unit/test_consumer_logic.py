"""Pure parts of the consumer (its dead letters: test_deadletter.py)."""

from heartbeat.consumer import next_offsets
from heartbeat.kafka import Partition, Record


def record(partition: int, offset: int, headers=None) -> Record:
    return Record("t", partition, offset, b"1", b"{}", None, headers or [])


def test_next_offsets_are_one_past_the_highest_offset_of_each_partition():
    batch = [record(0, 5), record(1, 9), record(0, 7), record(0, 6)]
    assert next_offsets(batch) == {Partition("t", 0): 8, Partition("t", 1): 10}


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
