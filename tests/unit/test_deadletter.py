"""Dead letters: cut to the topic's budget as whole records, sent until each is accounted for."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heartbeat.deadletter import (
    MIN_BUDGET_BYTES,
    DeadLetterSender,
    dead_letter,
    minimal_dead_letter,
)
from heartbeat.errors import KafkaUnavailable, MessageRefused
from heartbeat.kafka import DeliveryReport, Record
from heartbeat.metrics import ConsumerMetrics, new_registry
from heartbeat.validation import Reason, Rejection

REJECTION = Rejection(Reason.INVALID_UTF8, "byte 0 is not UTF-8")
TOO_LARGE = "Broker: Message size too large"


def record(
    *,
    key: bytes | None = b"7",
    value: bytes | None = b"\xff{}",
    headers: list[tuple[str, bytes]] | None = None,
    partition: int = 3,
    offset: int = 42,
    topic: str = "heartbeats",
) -> Record:
    return Record(topic, partition, offset, key, value, None, headers or [])


def poison() -> Record:
    """The message of the defect: it fits the broker's default limit, its dead letter did not."""
    headers = [(f"h{i:03d}", bytes([i]) * 4096) for i in range(116)]
    return record(key=b"k" * 1000, value=b"\xff" * 522_000, headers=headers)


def found(headers: list[tuple[str, bytes]]) -> dict[str, bytes]:
    return dict(headers)


# --- the dead letter ----------------------------------------------------------------


def test_dead_letter_headers_carry_reason_detail_and_source():
    letter = dead_letter(
        record(headers=[("trace", b"abc")]),
        Rejection(Reason.INVALID_JSON, "Expecting value"),
        10**6,
    )
    headers = found(letter.headers)
    assert headers["reason"] == b"invalid_json"
    assert headers["error"] == b"Expecting value"
    assert headers["source_topic"] == b"heartbeats"
    assert headers["source_partition"] == b"3"
    assert headers["source_offset"] == b"42"
    assert headers["original_trace"] == b"abc"


def test_a_small_rejected_message_goes_out_unchanged():
    small = record(headers=[("trace", b"abc")])
    letter = dead_letter(small, REJECTION, 4096)
    assert (letter.key, letter.value) == (small.key, small.value)
    names = [name for name, _ in letter.headers]
    assert "truncated" not in names
    assert not [n for n in names if n.startswith("source_") and n.endswith("size")]


def test_the_error_detail_is_at_most_one_kib_and_never_ends_inside_a_character():
    letter = dead_letter(record(), Rejection(Reason.INVALID_JSON, "é" * 2000), 10**6)
    error = found(letter.headers)["error"]
    assert len(error) == 1024
    assert error.decode() == "é" * 512


def test_the_poison_message_s_dead_letter_fits_with_its_key_and_every_header():
    original = poison()
    letter = dead_letter(original, REJECTION, 1_000_000)
    headers = found(letter.headers)
    assert letter.size <= 1_000_000
    assert headers["truncated"] == b"value"
    assert headers["source_value_size"] == b"522000"
    assert headers["source_key_size"] == b"1000"
    assert headers["source_header_count"] == b"116"
    assert headers["source_headers_size"] == str(116 * (4 + 4096)).encode()
    assert letter.key == original.key
    assert sum(1 for name, _ in letter.headers if name.startswith("original_")) == 116
    assert letter.value is not None
    assert original.value is not None
    assert 500_000 < len(letter.value) < len(original.value)
    assert original.value.startswith(letter.value)


# What each budget leaves of a message: (value, key, headers count x size) -> what is cut.
BIG_HEADERS = [(f"h{i}", b"x" * 4096) for i in range(10)]
CASES = [
    ("fits whole", record(value=b"v" * 900, key=b"k" * 50), 4096, None),
    ("value only cut", record(value=b"v" * 2_000_000, key=b"k" * 5000), 1_000_000, b"value"),
    ("headers dropped", record(value=b"v" * 100, headers=BIG_HEADERS), 20_000, b"headers"),
    (
        "value then headers",
        record(value=b"v" * 50_000, headers=BIG_HEADERS),
        20_000,
        b"value,headers",
    ),
    (
        "key cut last",
        record(value=None, key=b"k" * 10_000, headers=BIG_HEADERS),
        4096,
        b"headers,key",
    ),
    (
        "all three",
        record(value=b"v" * 10_000, key=b"k" * 10_000, headers=BIG_HEADERS),
        2048,
        b"value,headers,key",
    ),
    ("a value alone", record(value=b"v" * 10_000, headers=[]), 2048, b"value"),
    (
        "the key before the value's first KiB",
        record(value=b"v" * 10_000, key=b"k" * 600),
        MIN_BUDGET_BYTES,
        b"value,key",
    ),
]


@pytest.mark.parametrize(
    ("original", "budget", "truncated"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_dead_letter_fits_its_budget_and_says_what_was_cut(original, budget, truncated):
    letter = dead_letter(original, REJECTION, budget)
    headers = found(letter.headers)
    assert letter.size <= budget
    assert headers.get("truncated") == truncated
    if truncated is not None:
        assert headers["source_value_size"] == str(len(original.value or b"")).encode()
        assert headers["source_key_size"] == str(len(original.key or b"")).encode()
        assert headers["source_header_count"] == str(len(original.headers)).encode()


def test_a_dead_letter_of_exactly_the_budget_is_not_cut():
    original = record(value=b"v" * 3000)
    exact = dead_letter(original, REJECTION, 10**6).size
    assert dead_letter(original, REJECTION, exact).value == original.value
    assert found(dead_letter(original, REJECTION, exact - 1).headers)["truncated"] == b"value"


def test_headers_that_do_not_fit_are_dropped_whole_and_the_smaller_ones_after_them_kept():
    headers = [("huge", b"h" * 50_000), ("trace", b"abc"), ("span", b"def")]
    letter = dead_letter(record(headers=headers), REJECTION, 10_000)
    kept = {name: data for name, data in letter.headers if name.startswith("original_")}
    assert kept == {"original_trace": b"abc", "original_span": b"def"}
    assert found(letter.headers)["truncated"] == b"headers"


def test_room_freed_by_dropped_headers_goes_to_the_value():
    original = record(value=b"v" * 8000, headers=[("huge", b"h" * 50_000)])
    letter = dead_letter(original, REJECTION, 6000)
    assert letter.value is not None
    assert len(letter.value) > 5000
    assert letter.size <= 6000


def test_a_tiny_budget_cuts_the_error_detail_last():
    original = record(key=None, value=None)
    letter = dead_letter(original, Rejection(Reason.INVALID_JSON, "x" * 1024), 700)
    headers = found(letter.headers)
    assert letter.size <= 700
    assert headers["truncated"] == b"error"
    assert 0 < len(headers["error"]) < 1024
    assert headers["reason"] == b"invalid_json"


def test_a_minimal_dead_letter_keeps_reason_source_and_sizes_and_says_why():
    original = poison()
    letter = minimal_dead_letter(original, REJECTION, 1_000_000, TOO_LARGE)
    headers = found(letter.headers)
    assert (letter.key, letter.value) == (None, None)
    assert not [name for name, _ in letter.headers if name.startswith("original_")]
    assert headers["minimal"] == f"full dead letter refused: {TOO_LARGE}".encode()
    assert headers["reason"] == b"invalid_utf8"
    assert headers["error"] == b"byte 0 is not UTF-8"
    assert (headers["source_partition"], headers["source_offset"]) == (b"3", b"42")
    assert headers["source_value_size"] == b"522000"
    assert headers["source_key_size"] == b"1000"
    assert headers["source_header_count"] == b"116"
    assert letter.size < 1024


def test_a_minimal_dead_letter_fits_the_smallest_budget_with_the_longest_topic_and_detail():
    original = record(topic="t" * 249, partition=2**31 - 1, offset=2**63 - 1)
    letter = minimal_dead_letter(
        original, Rejection(Reason.UNPROCESSABLE, "é" * 5000), MIN_BUDGET_BYTES, "x" * 5000
    )
    assert letter.size <= MIN_BUDGET_BYTES


@settings(max_examples=300, deadline=None)
@given(
    value=st.none() | st.integers(0, 1_200_000),
    key=st.none() | st.integers(0, 20_000),
    headers=st.lists(st.tuples(st.integers(1, 300), st.integers(0, 70_000)), max_size=40),
    detail=st.integers(0, 3000),
    topic=st.integers(1, 249),
    budget=st.integers(MIN_BUDGET_BYTES, 1_000_000),
)
def test_every_dead_letter_fits_any_budget_and_keeps_the_start_of_what_it_cuts(
    value, key, headers, detail, topic, budget
):
    original = Record(
        "t" * topic,
        5,
        123_456,
        None if key is None else b"k" * key,
        None if value is None else b"\xff" * value,
        None,
        [(f"n{i}" + "n" * name, b"h" * size) for i, (name, size) in enumerate(headers)],
    )
    rejection = Rejection(Reason.INVALID_UTF8, "d" * detail)
    letter = dead_letter(original, rejection, budget)
    assert letter.size <= budget
    minimal = minimal_dead_letter(original, rejection, budget, TOO_LARGE)
    assert minimal.size <= budget

    whole = dead_letter(original, rejection, 10**12)
    assert ("truncated" in found(letter.headers)) == (whole.size > budget)
    if whole.size <= budget:
        assert letter == whole
    for part, cut in ((original.value, letter.value), (original.key, letter.key)):
        assert (part is None) == (cut is None)
        if part is not None and cut is not None:
            assert part.startswith(cut)
    kept = [
        (n.removeprefix("original_"), d) for n, d in letter.headers if n.startswith("original_")
    ]
    assert all(h in original.headers for h in kept)


# --- the sender ---------------------------------------------------------------------

Fate = Callable[[list[tuple[str, bytes]]], str]


class FakeProducer:
    """Stands in for KafkaProducer; ``fate`` decides each message's outcome from its headers.

    Outcomes: ``ok``, ``refused`` (delivery report refusing it), ``refused_now`` (raises
    MessageRefused), ``timeout`` (report of a transient failure) and ``hang`` (no report
    until purged).
    """

    def __init__(self, fate: Fate, max_message_bytes: int = 1_000_000) -> None:
        self.fate = fate
        self.max_message_bytes = max_message_bytes
        self.sent: list[tuple[bytes | None, bytes | None, dict[str, bytes]]] = []
        self.purges = 0
        self._queued: list[tuple[Callable[[DeliveryReport], None], DeliveryReport | None]] = []

    def produce(self, topic, key, value, headers=None, on_delivery=None, on_wait=None):
        outcome = self.fate(headers or [])
        if outcome == "refused_now":
            raise MessageRefused(f"cannot produce to {topic}: {TOO_LARGE}")
        self.sent.append((key, value, dict(headers or [])))
        report = {
            "ok": DeliveryReport(topic, 0, len(self.sent), None),
            "refused": DeliveryReport(topic, 0, -1, TOO_LARGE, refused=True),
            "timeout": DeliveryReport(topic, 0, -1, "Local: Message timed out"),
            "hang": None,
        }[outcome]
        self._queued.append((on_delivery, report))

    def flush(self, timeout: float) -> int:
        waiting = [(cb, r) for cb, r in self._queued if r is None]
        for callback, report in self._queued:
            if report is not None:
                callback(report)
        self._queued = waiting
        return len(waiting)

    def purge(self) -> None:
        self.purges += 1
        for callback, _ in self._queued:
            callback(DeliveryReport("", -1, -1, "Local: Purged in queue"))
        self._queued = []

    def __len__(self) -> int:
        return len(self._queued)


def by_offset(rules: dict[int, str | list[str]]) -> Fate:
    """Each source offset's outcomes in turn (the last one repeats); ``ok`` for the others."""
    seen: dict[int, int] = {}

    def fate(headers: list[tuple[str, bytes]]) -> str:
        offset = int(dict(headers)["source_offset"])
        outcomes = rules.get(offset, "ok")
        if isinstance(outcomes, str):
            return outcomes
        turn = seen.get(offset, 0)
        seen[offset] = turn + 1
        return outcomes[min(turn, len(outcomes) - 1)]

    return fate


@pytest.fixture
def registry():
    return new_registry(process_collectors=False)


def sender_for(producer: FakeProducer, registry, **kwargs) -> DeadLetterSender:
    return DeadLetterSender(
        producer, "heartbeats.dlq", 1_000_000, ConsumerMetrics(registry), **kwargs
    )  # type: ignore[arg-type]


def pairs(*offsets: int, reason: Reason = Reason.INVALID_UTF8) -> list[tuple[Record, Rejection]]:
    return [(record(offset=o), Rejection(reason, "bad")) for o in offsets]


def rejected(registry, reason: Reason = Reason.INVALID_UTF8) -> float | None:
    return registry.get_sample_value("heartbeat_rejected_total", {"reason": reason.value})


def refused(registry) -> float | None:
    return registry.get_sample_value("heartbeat_dead_letters_refused_total")


def test_every_dead_letter_is_produced_once_and_counted_by_reason(registry):
    producer = FakeProducer(by_offset({}))
    sender = sender_for(producer, registry)
    letters = sender.batch()
    letters.deliver(pairs(1, 2) + pairs(3, reason=Reason.INVALID_JSON))
    letters.deliver(pairs(1, 2) + pairs(3, reason=Reason.INVALID_JSON))  # a retry of the batch
    assert [int(h["source_offset"]) for _, _, h in producer.sent] == [1, 2, 3]
    assert rejected(registry) == 2
    assert rejected(registry, Reason.INVALID_JSON) == 1
    assert refused(registry) == 0


@pytest.mark.parametrize("refusal", ["refused", "refused_now"])
def test_a_refused_dead_letter_is_replaced_by_a_minimal_one_and_counted(registry, caplog, refusal):
    producer = FakeProducer(by_offset({2: [refusal, "ok"]}))
    sender = sender_for(producer, registry)
    letters = sender.batch()
    with caplog.at_level(logging.WARNING, logger="heartbeat.deadletter"):
        letters.deliver(pairs(1, 2, 3))
    minimal = [h for _, _, h in producer.sent if "minimal" in h]
    assert len(minimal) == 1
    assert minimal[0]["source_offset"] == b"2"
    assert TOO_LARGE.encode() in minimal[0]["minimal"]
    assert refused(registry) == 1
    assert rejected(registry) == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "heartbeats[3]@2" in warnings[0]


def test_a_refused_minimal_dead_letter_is_logged_and_never_stops_the_batch(registry, caplog):
    producer = FakeProducer(by_offset({2: "refused"}))
    sender = sender_for(producer, registry)
    letters = sender.batch()
    with caplog.at_level(logging.WARNING, logger="heartbeat.deadletter"):
        letters.deliver(pairs(1, 2))
        letters.deliver(pairs(1, 2))
    assert len(producer.sent) == 3  # 1, 2 and 2's minimal; nothing on the second call
    assert refused(registry) == 2
    assert rejected(registry) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "heartbeats[3]@2" in errors[0]


def test_a_transient_failure_raises_and_the_retry_sends_only_what_is_missing(registry):
    producer = FakeProducer(by_offset({2: ["timeout", "ok"]}))
    sender = sender_for(producer, registry)
    letters = sender.batch()
    with pytest.raises(KafkaUnavailable, match="1 of 3 dead-letter messages not delivered"):
        letters.deliver(pairs(1, 2, 3))
    assert rejected(registry) == 2
    letters.deliver(pairs(1, 2, 3))
    assert [int(h["source_offset"]) for _, _, h in producer.sent] == [1, 2, 3, 2]
    assert rejected(registry) == 3
    assert refused(registry) == 0


def test_a_minimal_dead_letter_that_failed_transiently_is_retried_as_a_minimal_one(registry):
    producer = FakeProducer(by_offset({2: ["refused", "timeout", "ok"]}))
    sender = sender_for(producer, registry)
    letters = sender.batch()
    with pytest.raises(KafkaUnavailable):
        letters.deliver(pairs(2))
    letters.deliver(pairs(2))
    assert ["minimal" in h for _, _, h in producer.sent] == [False, True, True]
    assert refused(registry) == 1
    assert rejected(registry) == 1


def test_reports_that_never_come_are_purged_and_the_batch_retried(registry):
    producer = FakeProducer(by_offset({1: ["hang", "ok"]}))
    sender = sender_for(producer, registry, flush_timeout=0.05)
    letters = sender.batch()
    with pytest.raises(KafkaUnavailable, match=r"1 of 2 .*Purged"):
        letters.deliver(pairs(1, 2))
    assert producer.purges == 1
    assert len(producer) == 0
    letters.deliver(pairs(1, 2))
    assert rejected(registry) == 2


def test_giving_up_while_waiting_leaves_nothing_queued(registry):
    producer = FakeProducer(by_offset({1: "hang"}))
    sender = sender_for(producer, registry)

    def stopping() -> None:
        raise KafkaUnavailable("stopping")

    letters = sender.batch()
    with pytest.raises(KafkaUnavailable, match="stopping"):
        letters.deliver(pairs(1), on_wait=stopping)
    assert len(producer) == 0


def test_the_next_batch_sends_the_same_offsets_again(registry):
    producer = FakeProducer(by_offset({}))
    sender = sender_for(producer, registry)
    sender.batch().deliver(pairs(1))
    sender.batch().deliver(pairs(1))
    assert len(producer.sent) == 2


def test_the_budget_never_exceeds_what_the_producer_may_send(registry):
    sender = DeadLetterSender(
        FakeProducer(by_offset({}), max_message_bytes=50_000),  # type: ignore[arg-type]
        "heartbeats.dlq",
        1_000_000,
        ConsumerMetrics(registry),
    )
    assert sender.budget == 50_000


# --- a batch's dead letters, produced early ------------------------------------------


def test_dead_letters_sent_early_are_only_waited_for_when_the_batch_delivers(registry):
    producer = FakeProducer(by_offset({}))
    letters = sender_for(producer, registry).batch()
    letters.send(pairs(1, 2))
    letters.send(pairs(1, 2, 3))  # the loop's next poll: only 3 is new
    assert [int(h["source_offset"]) for _, _, h in producer.sent] == [1, 2, 3]
    assert len(producer) == 3, "send never waits for Kafka"
    letters.deliver(pairs(1, 2, 3))
    assert len(producer.sent) == 3
    assert len(producer) == 0
    assert rejected(registry) == 3


def test_an_early_dead_letter_that_failed_is_produced_again_by_deliver_alone(registry):
    producer = FakeProducer(by_offset({2: ["timeout", "ok"]}))
    letters = sender_for(producer, registry).batch()
    letters.send(pairs(1, 2))
    producer.flush(0)  # their reports: 2 failed
    letters.send(pairs(1, 2))  # never retried here
    letters.deliver(pairs(1, 2))
    assert [int(h["source_offset"]) for _, _, h in producer.sent] == [1, 2, 2]
    assert rejected(registry) == 2


@pytest.mark.parametrize("refusal", ["refused", "refused_now"])
def test_an_early_dead_letter_refused_is_replaced_by_a_minimal_one_when_delivered(
    registry, refusal
):
    producer = FakeProducer(by_offset({2: [refusal, "ok"]}))
    letters = sender_for(producer, registry).batch()
    letters.send(pairs(1, 2))
    letters.deliver(pairs(1, 2))
    assert [h["source_offset"] for _, _, h in producer.sent if "minimal" in h] == [b"2"]
    assert refused(registry) == 1
    assert rejected(registry) == 2


def test_a_batch_waits_for_its_own_dead_letters_not_for_the_next_one_s(registry):
    producer = FakeProducer(by_offset({9: "hang"}))
    sender = sender_for(producer, registry, flush_timeout=5.0)
    following = sender.batch()
    following.send(pairs(9))  # the batch being collected: no report yet
    current = sender.batch()
    started = time.monotonic()
    current.deliver(pairs(1))
    assert time.monotonic() - started < 1.0
    assert producer.purges == 0
    assert len(producer) == 1, "the next batch's dead letter is still queued"


def test_a_queue_full_leaves_what_send_could_not_queue_to_deliver(registry):
    producer = FakeProducer(by_offset({}))
    original = producer.produce

    def full_once(topic, key, value, headers=None, on_delivery=None, on_wait=None):
        if len(producer.sent) == 1 and on_wait is not None:
            on_wait()  # what KafkaProducer.produce calls while the queue has no room
        original(topic, key, value, headers, on_delivery, on_wait)

    producer.produce = full_once  # type: ignore[method-assign]
    letters = sender_for(producer, registry).batch()
    letters.send(pairs(1, 2, 3))
    assert len(producer.sent) == 1
    letters.deliver(pairs(1, 2, 3), on_wait=lambda: None)
    assert [int(h["source_offset"]) for _, _, h in producer.sent] == [1, 2, 3]
