"""The consumer's loop, one step at a time, against in-memory stand-ins for Kafka and PostgreSQL."""

import threading
from datetime import UTC, datetime

from heartbeat.consumer import ConsumerApp
from heartbeat.errors import DatabaseUnavailable
from heartbeat.metrics import ConsumerMetrics, new_registry
from heartbeat.reading_rows import pack_rows
from heartbeat.server import Health
from heartbeat.settings import Settings
from heartbeat.types import Partition
from heartbeat.validation import from_micros
from tests.unit.test_batch import FakeMessage as _Message
from tests.unit.test_batch import payload

TOPIC = "heartbeats"
P0, P1 = Partition(TOPIC, 0), Partition(TOPIC, 1)


class FakeMessage(_Message):
    """A message as the dead-letter paths read it too."""

    def key(self) -> bytes:
        return b"k"

    def timestamp(self) -> tuple[int, int]:
        return (0, 0)

    def headers(self) -> None:
        return None


class FakeConsumer:
    def __init__(self) -> None:
        self.queue: list[FakeMessage] = []
        self.commits: list[dict[Partition, int]] = []
        self.seeks: dict[Partition, int | None] = {}
        self.paused: set[Partition] = set()

    def poll_messages(self, max_messages: int, timeout: float) -> list[FakeMessage]:
        ready = [m for m in self.queue if Partition(TOPIC, m.partition()) not in self.paused]
        taken = ready[:max_messages]
        self.queue = [m for m in self.queue if m not in taken]
        return taken

    def seek(self, partition: Partition, offset: int | None) -> None:
        self.seeks[partition] = offset

    def resume(self, partitions) -> None:
        self.paused -= set(partitions)

    def pause(self, partitions) -> None:
        self.paused |= set(partitions)

    def commit(self, offsets) -> None:
        if offsets:
            self.commits.append(dict(offsets))

    def ping(self, timeout: float) -> None:
        pass


class FakeStore:
    def __init__(self) -> None:
        self.offsets: dict[Partition, int] = {}
        self.rows: list[tuple[int, datetime, int]] = []
        self.failures = 0  # writes to fail before one succeeds
        self.gate: threading.Event | None = None  # set: the write may finish
        self.events: list[str] = []  # "commit" for each write, beside the dead letters'

    def load_offsets(self, group, topics):
        return dict(self.offsets)

    def write_rows(self, group, copy_data, readings, offsets, *, rejected, source, on_conflicts):
        from heartbeat.store import BatchResult

        if self.gate is not None:
            self.gate.wait(10)
        if self.failures:
            self.failures -= 1
            raise DatabaseUnavailable("connection refused")
        assert copy_data == pack_rows(readings.customer_ids, readings.micros, readings.heart_rates)
        self.rows += [
            (readings.customer_ids[i], from_micros(readings.micros[i]), readings.heart_rates[i])
            for i in range(len(readings))
        ]
        for p, o in offsets.items():
            self.offsets[p] = max(o, self.offsets.get(p, 0))
        self.events.append("commit")
        return BatchResult(len(readings), len(readings), 0, 0, 0, dead_letters=len(rejected))

    def count_stale_customers(self, stale_after):
        return 0

    def ping(self):
        pass


class FakeSender:
    """Each batch's dead letters: sent early (not waited for), then delivered before commit."""

    def __init__(self) -> None:
        self.sent: list[int] = []  # produced early, as collected
        self.delivered: list[tuple[int, str]] = []
        self.events: list[str] = []  # "sent", "delivered", in order, with the store's "commit"

    def batch(self):
        return FakeLetters(self)


class FakeLetters:
    def __init__(self, sender: FakeSender) -> None:
        self.sender = sender
        self.done: set[int] = set()

    def send(self, pairs):
        self.sender.sent += [record.offset for record, _ in pairs]
        self.sender.events.append("sent")

    def deliver(self, pairs, on_wait=None):
        new = [(r.offset, j.reason.value) for r, j in pairs if r.offset not in self.done]
        self.done |= {offset for offset, _ in new}
        self.sender.delivered += new
        self.sender.events.append("delivered")


def make_app():
    settings = Settings(
        _env_file=None,
        kafka_topic=TOPIC,
        consumer_batch_max_messages=100,
        consumer_batch_max_wait_seconds=0.01,
        retry_initial_seconds=0.01,
        retry_max_seconds=0.02,
    )
    registry = new_registry(process_collectors=False)
    store, consumer, sender = FakeStore(), FakeConsumer(), FakeSender()
    store.events = sender.events
    app = ConsumerApp(
        settings, store=store, metrics=ConsumerMetrics(registry), health=Health(("kafka",), 60)
    )
    app.attach(consumer, sender)  # type: ignore[arg-type]
    return app, store, consumer, sender, registry


def readings(partition: int, first: int, count: int) -> list[FakeMessage]:
    return [
        FakeMessage(partition, first + i, payload(customer_id=first + i + 1), TOPIC)
        for i in range(count)
    ]


def test_a_step_positions_new_partitions_and_the_next_writes_their_batch():
    app, store, consumer, sender, registry = make_app()
    store.offsets = {P0: 3}
    app._on_assign([P0, P1])
    consumer.queue = [*readings(0, 3, 2), FakeMessage(0, 5, b"{bad", TOPIC), *readings(1, 0, 1)]
    app.step()  # positions, collects, hands the batch to the writer
    assert consumer.seeks == {P0: 3, P1: None}
    app.step()  # settles it
    assert store.offsets == {P0: 6, P1: 1}
    assert consumer.commits == [{P0: 6, P1: 1}]
    assert sorted(cid for cid, _, _ in store.rows) == [1, 4, 5]
    assert sender.delivered == [(5, "invalid_json")]
    assert registry.get_sample_value("heartbeat_stored_total") == 3
    assert registry.get_sample_value("heartbeat_consumed_total") == 4
    assert registry.get_sample_value("heartbeat_event_to_stored_seconds_count") == 3


def test_a_write_that_fails_is_retried_and_nothing_is_skipped():
    app, store, consumer, _, registry = make_app()
    app._on_assign([P0])
    consumer.queue = readings(0, 0, 5)
    store.failures = 2
    app.step()
    app.step()
    assert store.offsets == {P0: 5}
    assert len(store.rows) == 5
    retries = registry.get_sample_value(
        "heartbeat_dependency_retries_total", {"dependency": "postgres"}
    )
    assert retries == 2


def first_batch_held(*partitions: Partition):
    """An app whose first batch, two readings of each of ``partitions``, is in flight,
    held at the store's gate."""
    app, store, consumer, sender, registry = make_app()
    app._on_assign(list(partitions))
    consumer.queue = [m for p in partitions for m in readings(p.partition, 0, 2)]
    store.gate = threading.Event()
    app.step()
    return app, store, consumer, sender, registry


def assert_p1_left_out_of_batch_two(store: FakeStore, consumer: FakeConsumer) -> None:
    assert consumer.commits == [{P0: 2}, {P0: 3}]
    assert store.offsets == {P0: 3, P1: 2}, "the write in flight committed whole"
    assert sorted(cid for cid, _, _ in store.rows) == [1, 1, 2, 2, 3]


def test_a_partition_revoked_during_a_write_leaves_the_next_batch_and_is_not_committed_to_kafka():
    app, store, consumer, _, _ = first_batch_held(P0, P1)
    # batch 2, collected meanwhile
    app._batch.add([*readings(0, 2, 1), *readings(1, 2, 1)], app._progress.tracked(), now_utc())
    app._on_revoke([P1], False)
    store.gate.set()
    app.step()  # batch 1 commits, whole; batch 2 goes without P1
    app.step()
    assert_p1_left_out_of_batch_two(store, consumer)


def test_a_partition_revoked_after_the_next_batch_was_packed_is_left_out_of_its_write():
    app, store, consumer, _, _ = first_batch_held(P0, P1)
    consumer.queue = [*readings(0, 2, 1), *readings(1, 2, 1)]
    prepare = app._writer.prepare

    def prepare_then_revoke(batch):
        prepare(batch)  # batch 2 packed while batch 1 is written...
        app._on_revoke([P1], False)  # ...then P1 revoked, as while the loop waits for batch 1

    app._writer.prepare = prepare_then_revoke  # type: ignore[method-assign]
    release = threading.Timer(0.3, store.gate.set)
    release.start()
    app.step()
    app.step()
    release.join()
    assert_p1_left_out_of_batch_two(store, consumer)


def test_the_next_batch_is_handed_over_before_the_settled_one_is_recorded():
    app, store, consumer, _, registry = first_batch_held(P0)
    consumer.queue = readings(0, 2, 3)
    seen: list[tuple[bool, float | None]] = []
    record = app._writer.record

    def recording(written):
        stored = registry.get_sample_value("heartbeat_stored_total")
        seen.append((app._writer.in_flight, stored))
        record(written)

    app._writer.record = recording  # type: ignore[method-assign]
    release = threading.Timer(0.3, store.gate.set)
    release.start()
    app.step()  # batch 2 collected and packed; batch 1 settles; batch 2 goes; batch 1 recorded
    release.join()
    assert seen == [(True, 0.0)], "batch 2 was in flight when batch 1's metrics were taken"
    app.step()
    assert registry.get_sample_value("heartbeat_stored_total") == 5
    assert store.offsets == {P0: 5}


def test_the_batches_commit_in_order_one_at_a_time():
    app, store, consumer, _, _ = make_app()
    app._on_assign([P0])
    app.step()
    seen: list[int] = []
    original = store.write_rows

    def recording(group, copy_data, readings, offsets, **kwargs):
        seen.append(offsets[P0])
        return original(group, copy_data, readings, offsets, **kwargs)

    store.write_rows = recording  # type: ignore[method-assign]
    for first in range(0, 300, 100):
        consumer.queue = readings(0, first, 100)
        app.step()
    app.step()
    assert seen == [100, 200, 300]
    assert now_utc() >= max(ts for _, ts, _ in store.rows)


def test_a_batch_s_dead_letters_go_out_while_the_one_before_is_written_and_before_its_own_commit():
    app, store, consumer, sender, _ = first_batch_held(P0)
    consumer.queue = [FakeMessage(0, 2, b"{bad", TOPIC), *readings(0, 3, 1)]
    release = threading.Timer(0.3, store.gate.set)
    release.start()
    app.step()  # collects batch 2 while batch 1 is held, then settles batch 1, hands batch 2 over
    app.step()
    release.join()
    assert sender.sent == [2], "produced as it was collected"
    assert sender.delivered == [(2, "invalid_json")]
    assert sender.events == ["sent", "commit", "delivered", "commit"]
    assert store.offsets == {P0: 4}


def test_a_retried_write_delivers_only_the_dead_letters_not_delivered_yet():
    app, store, consumer, sender, _ = make_app()
    app._on_assign([P0])
    consumer.queue = [FakeMessage(0, 0, b"{bad", TOPIC), *readings(0, 1, 2)]
    store.failures = 1
    app.step()
    app.step()
    assert sender.delivered == [(0, "invalid_json")]
    assert sender.events == ["sent", "delivered", "delivered", "commit"]
    assert store.offsets == {P0: 3}


def now_utc() -> datetime:
    return datetime.now(UTC)
