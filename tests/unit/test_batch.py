"""The batch being collected: the fast path decides exactly as ``validate`` does, per partition."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heartbeat.batch import Batch
from heartbeat.types import Partition
from heartbeat.validation import Reading, Rejection, to_micros, validate

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SKEW = timedelta(minutes=5)
TOPIC = "t"
ALL = {Partition(TOPIC, p) for p in range(6)}


@dataclass
class FakeMessage:
    """What the consumer reads of a Kafka message."""

    _partition: int
    _offset: int
    _value: bytes | None
    _topic: str = TOPIC

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value


def payload(**fields: object) -> bytes:
    reading = {"customer_id": 7, "timestamp": "2026-01-01T11:59:00+00:00", "heart_rate": 72}
    reading.update(fields)
    return json.dumps({k: v for k, v in reading.items() if v is not ...}).encode()


def verdicts(batch: Batch) -> dict[int, object]:
    """Each message's outcome by offset: (customer, microseconds, rate) or its Rejection."""
    found: dict[int, object] = {}
    for part in batch:
        for cid, us, rate, source in zip(
            part.customer_ids, part.micros, part.heart_rates, part.sources, strict=True
        ):
            found[source.offset()] = (cid, us, rate)
        for message, rejection in part.rejected:
            found[message.offset()] = rejection
    return found


def expected(raw: bytes | None) -> object:
    verdict = validate(raw, now=NOW, max_future_skew=SKEW)
    if isinstance(verdict, Reading):
        return (verdict.customer_id, to_micros(verdict.ts), verdict.heart_rate)
    return verdict


CORPUS = [
    payload(),
    payload(timestamp="2026-01-01T11:59:00.123456Z"),
    payload(timestamp="2026-01-01t11:59:00z"),
    payload(timestamp="2026-01-01 12:59:00+01:00"),
    payload(timestamp="2026-01-01T11:59:00.0000019Z"),  # truncated, never rounded
    payload(timestamp="2026-01-01T11:59:00.9999999Z"),
    payload(timestamp="2026-01-01T11:59:00-00:00"),
    payload(timestamp="2026-01-01T11:59:00+0100"),
    payload(timestamp="2026-01-01T11:59Z"),
    payload(timestamp="2026-01-01T23:59:60Z"),
    payload(timestamp="2026-02-30T11:00:00Z"),
    payload(timestamp="20260101T110000Z"),
    payload(timestamp="2026-01-01T11:59:00"),
    payload(timestamp="2026-01-01T12:05:01Z"),
    payload(timestamp="2026-01-01T12:05:00Z"),
    payload(timestamp="0001-01-01T00:00:00+01:00"),
    payload(timestamp="0001-01-01T00:00:00Z"),
    payload(timestamp="\uff12026-01-01T11:59:00Z"),  # a fullwidth digit
    payload(customer_id=True),
    payload(customer_id=7.0),
    payload(customer_id=0),
    payload(customer_id=2**63 - 1),
    payload(customer_id=2**63),
    payload(heart_rate=29),
    payload(heart_rate=30),
    payload(heart_rate=220),
    payload(heart_rate=221),
    payload(heart_rate=44),
    payload(heart_rate=181),
    payload(heart_rate=7e1),
    payload(extra="ignored"),
    payload(customer_id=...),
    b'{"customer_id":1,"timestamp":"2026-01-01T11:59:00Z","heart_rate":70,"junk":"\xff"}',
    b'{"customer_id":1,"customer_id":2,"timestamp":"2026-01-01T11:59:00Z","heart_rate":70}',
    b'\xef\xbb\xbf{"customer_id":1,"timestamp":"2026-01-01T11:59:00Z","heart_rate":70}',
    b'{"customer_id":1,"timestamp":"2026-01-01T11:59:00Z","heart_rate":70} ',
    b'{"customer_id":1,"timestamp":"2026-01-01T11:59:00Z","heart_rate":70}{}',
    b'{"customer_id":1,"timestamp":"\\ud800","heart_rate":70}',
    b'{"customer_id":1,"timestamp":"2026-01-01T11:59:00Z","heart_rate":70,"j":1e999}',
    b'{"customer\\u005fid":1,"timestamp":"2026-01-01T11:59:00Z","heart_rate":70}',
    b'{"customer_id":01,"timestamp":"2026-01-01T11:59:00Z","heart_rate":70}',
    b"[" * 100_000,
    b"",
    None,
    b"[1, 2]",
    b"null",
]


@pytest.mark.parametrize("raw", CORPUS)
def test_every_message_gets_the_verdict_validate_gives_it(raw):
    batch = Batch(SKEW)
    batch.add([FakeMessage(0, 0, raw)], ALL, NOW)
    assert verdicts(batch) == {0: expected(raw)}


_values = st.one_of(
    st.integers(-(2**64), 2**64),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(
        ["2026-01-01T11:59:00Z", "2026-01-01T11:59:00.5+02:00", "2026-01-01 11:59:00", "x"]
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["customer_id", "timestamp", "heart_rate", "other"]), _values, max_size=4
    )
)
def test_arbitrary_objects_get_the_verdict_validate_gives_them(document):
    raw = json.dumps(document).encode()
    batch = Batch(SKEW)
    batch.add([FakeMessage(0, 0, raw)], ALL, NOW)
    assert verdicts(batch) == {0: expected(raw)}


def test_messages_are_kept_per_partition_with_the_offset_after_each_ones_last():
    batch = Batch(SKEW)
    messages = [
        FakeMessage(0, 5, payload()),
        FakeMessage(0, 6, b"{not json"),
        FakeMessage(1, 9, payload(customer_id=8)),
        FakeMessage(0, 7, payload(customer_id=9)),
    ]
    assert batch.add(messages, ALL, NOW) == 4
    assert batch.next_offsets() == {Partition(TOPIC, 0): 8, Partition(TOPIC, 1): 10}
    assert batch.size == 4
    columns = batch.columns()
    assert sorted(columns.customer_ids) == [7, 8, 9]
    [(message, rejection)] = batch.rejections()
    assert (message.offset(), rejection.reason.value) == (6, "invalid_json")


def test_messages_of_partitions_not_readable_are_not_taken():
    batch = Batch(SKEW)
    readable = {Partition(TOPIC, 1)}
    messages = [FakeMessage(0, 1, payload()), FakeMessage(1, 2, payload()), FakeMessage(0, 3, b"")]
    assert batch.add(messages, readable, NOW) == 1
    assert batch.next_offsets() == {Partition(TOPIC, 1): 3}


def test_a_revoked_partition_leaves_the_batch_and_its_offsets_with_it():
    batch = Batch(SKEW)
    batch.add([FakeMessage(0, 1, payload()), FakeMessage(1, 2, b"")], ALL, NOW)
    assert batch.drop([Partition(TOPIC, 1)]) == 1
    assert batch.next_offsets() == {Partition(TOPIC, 0): 2}
    assert batch.rejections() == []
    assert batch.keep({Partition(TOPIC, 3)}) == 1
    assert (batch.size, batch.next_offsets(), len(batch.columns())) == (0, {}, 0)


def test_the_revision_moves_on_with_every_change_and_only_then():
    batch = Batch(SKEW)
    seen = [batch.revision]
    batch.add([FakeMessage(0, 1, payload())], ALL, NOW)
    seen.append(batch.revision)
    batch.drop([Partition(TOPIC, 5)])  # not in the batch: no change
    assert batch.revision == seen[-1]
    batch.add([FakeMessage(1, 1, payload())], ALL, NOW)
    seen.append(batch.revision)
    batch.keep({Partition(TOPIC, 0)})
    seen.append(batch.revision)
    assert len(set(seen)) == 4


def test_a_reading_of_the_columns_is_the_one_validate_makes():
    batch = Batch(SKEW)
    raw = payload(heart_rate=190, timestamp="2026-01-01T12:59:00.25+01:00")
    batch.add([FakeMessage(0, 0, raw)], ALL, NOW)
    assert batch.columns().reading(0) == validate(raw, now=NOW, max_future_skew=SKEW)


def test_rejection_details_are_those_of_validate():
    batch = Batch(SKEW)
    raw = payload(timestamp="2026-01-01T12:05:01Z")
    batch.add([FakeMessage(0, 0, raw)], ALL, NOW)
    [(_, rejection)] = batch.rejections()
    assert isinstance(rejection, Rejection)
    assert rejection == validate(raw, now=NOW, max_future_skew=SKEW)


def test_new_rejections_are_each_handed_out_once_and_none_of_a_dropped_partition():
    batch = Batch(SKEW)
    batch.add([FakeMessage(0, 0, b"{bad"), FakeMessage(0, 1, payload())], ALL, NOW)
    assert [m.offset() for m, _ in batch.new_rejections()] == [0]
    assert batch.new_rejections() == []
    batch.add([FakeMessage(0, 2, b"\xff"), FakeMessage(1, 0, b"[]")], ALL, NOW)
    batch.drop([Partition(TOPIC, 1)])
    assert [(m.partition(), m.offset()) for m, _ in batch.new_rejections()] == [(0, 2)]
    assert [m.offset() for m, _ in batch.rejections()] == [0, 2], "all of them stay in the batch"
