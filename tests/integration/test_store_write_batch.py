"""A batch's transaction against the real PostgreSQL: duplicates, conflicts and dead letters.

Each case runs through both ways in: ``Store.write_rows``, the consumer's (binary COPY of
``pack_rows``, counts from one aggregate row), and ``Store.write_batch`` (a list of
``Reading``, packed and written by ``write_rows``, answering the stored instants).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

import heartbeat.reading_rows
from heartbeat.batch import Columns
from heartbeat.dead_letter_rows import MAX_PAYLOAD_BYTES
from heartbeat.errors import FatalError, KafkaUnavailable
from heartbeat.kafka import Partition, Record
from heartbeat.reading_rows import pack_rows
from heartbeat.store import Store, WriteResult
from heartbeat.validation import Reading, Reason, Rejection, classify, to_micros, validate

pytestmark = pytest.mark.integration

GROUP = "group-a"
TOPIC = "heartbeats"
T0 = datetime(2026, 1, 1, 11, 0, tzinfo=UTC)


def reading(customer: int, second: int, heart_rate: int, micro: int = 0) -> Reading:
    ts = T0 + timedelta(seconds=second, microseconds=micro)
    return Reading(customer, ts, heart_rate, classify(heart_rate))


def record(offset: int, value: bytes | None = b"{}", **changes: object) -> Record:
    fields: dict[str, object] = {
        "topic": TOPIC,
        "partition": 0,
        "offset": offset,
        "key": b"7",
        "value": value,
        "timestamp_ms": 1_767_265_200_000,
        "headers": [],
    }
    fields.update(changes)
    return Record(**fields)  # type: ignore[arg-type]


def sql(conninfo: str, statement: str, params: object = None) -> list[tuple]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        cursor = conn.execute(statement, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def store(database):
    with Store(database, max_size=2, connect_timeout=2) as store:
        yield store


# What a batch's transaction reports, in one shape for both ways in: ``write_batch``'s.
Write = Callable[..., WriteResult]


def through_write_batch(store: Store) -> Write:
    return store.write_batch


def through_write_rows(store: Store) -> Write:
    """As the consumer calls it: the readings as columns, their records asked for by index."""

    def write(group, readings, offsets, *, sources=None, rejected=(), on_conflicts=None):
        customer_ids = [r.customer_id for r in readings]
        micros = [to_micros(r.ts) for r in readings]
        heart_rates = [r.heart_rate for r in readings]
        # The consumer's columns carry its messages; here they are only counted, and a
        # conflict's record comes from ``source``.
        columns = Columns(customer_ids, micros, heart_rates, [None] * len(readings))
        result = store.write_rows(
            group,
            pack_rows(customer_ids, micros, heart_rates),
            columns,
            offsets,
            rejected=rejected,
            source=None if sources is None else sources.__getitem__,
            on_conflicts=on_conflicts,
        )
        assert result.staged == len(readings)
        instants = result.stored_instants
        if instants is None:  # all of them were stored, or none
            assert result.stored in (0, len(readings))
            instants = [r.ts for r in readings] if result.stored else []
        assert len(instants) == result.stored
        return WriteResult(
            instants,
            result.low,
            result.high,
            result.duplicates,
            result.conflicts,
            result.dead_letters,
        )

    return write


@pytest.fixture(params=["write_rows", "write_batch"])
def write(request, store) -> Write:
    """``Store.write_batch``'s arguments, through each way in."""
    return {"write_rows": through_write_rows, "write_batch": through_write_batch}[request.param](
        store
    )


def test_a_new_batch_is_stored_with_no_duplicates_and_no_conflicts(write, database):
    readings = [reading(c, s, 60 + c) for c in range(1, 6) for s in range(10)]
    result = write(GROUP, readings, {Partition(TOPIC, 0): 50})
    assert len(result.stored) == 50
    assert (result.duplicates, result.conflicts, result.dead_letters) == (0, [], 0)
    assert sql(database, "SELECT count(*) FROM heartbeats") == [(50,)]


def test_stored_readings_are_counted_low_and_high_as_flagged_and_duplicates_are_not(
    write, database
):
    batch = [reading(1, 0, 40), reading(1, 1, 44), reading(1, 2, 70), reading(1, 3, 190)]
    first = write(GROUP, batch, {})
    assert (len(first.stored), first.low, first.high) == (4, 2, 1)
    new = reading(1, 4, 200)
    again = write(GROUP, [*batch[1:], new], {})
    assert (again.stored, again.low, again.high, again.duplicates) == ([new.ts], 0, 1, 3)
    flagged = sql(database, "SELECT anomaly, count(*) FROM heartbeats GROUP BY 1 ORDER BY 1")
    assert flagged == [("high", 2), ("low", 2), (None, 1)]


def test_the_same_readings_again_are_counted_as_duplicates_and_nothing_else(write, database):
    readings = [reading(1, s, 70) for s in range(20)]
    write(GROUP, readings, {})
    calls = []
    result = write(
        GROUP,
        readings,
        {},
        sources=[record(i) for i in range(20)],
        on_conflicts=calls.append,
    )
    assert (len(result.stored), result.duplicates, result.conflicts) == (0, 20, [])
    assert calls == []
    assert sql(database, "SELECT count(*) FROM dead_letters") == [(0,)]


def test_a_reading_for_a_stored_instant_with_another_heart_rate_is_a_conflict(write, database):
    write(GROUP, [reading(7, 0, 70)], {})
    later = [reading(7, 1, 72), reading(7, 0, 71)]
    result = write(GROUP, later, {})

    assert result.stored == [later[0].ts]
    assert result.duplicates == 0
    [conflict] = result.conflicts
    assert (conflict.index, conflict.reading, conflict.stored_heart_rate) == (1, later[1], 70)
    assert conflict.rejection == Rejection(
        Reason.CONFLICTING_READING,
        "customer 7 at 2026-01-01T11:00:00Z already stored with heart_rate 70;"
        " this reading says 71",
    )
    assert sql(database, "SELECT heart_rate FROM heartbeats WHERE ts = %s", (T0,)) == [(70,)]


def test_within_one_batch_the_first_reading_of_an_instant_is_stored_and_the_others_judged(
    write, database
):
    batch = [reading(3, 0, 70), reading(3, 0, 71), reading(3, 0, 70), reading(3, 1, 90)]
    result = write(GROUP, batch, {})
    assert len(result.stored) == 2
    assert result.duplicates == 1  # the second 70
    assert [(c.index, c.stored_heart_rate) for c in result.conflicts] == [(1, 70)]
    assert sql(database, "SELECT heart_rate FROM heartbeats ORDER BY ts") == [(70,), (90,)]


def test_timestamps_a_fraction_of_a_microsecond_apart_with_other_rates_conflict(write, database):
    now, skew = datetime(2026, 1, 1, 12, tzinfo=UTC), timedelta(minutes=5)
    first, second = (
        validate(
            json.dumps({"customer_id": 9, "timestamp": ts, "heart_rate": rate}).encode(),
            now=now,
            max_future_skew=skew,
        )
        for ts, rate in (
            ("2026-01-01T11:00:00.0000011Z", 70),
            ("2026-01-01T11:00:00.0000014Z", 71),
        )
    )
    assert isinstance(first, Reading)
    assert isinstance(second, Reading)
    result = write(GROUP, [first, second], {})
    assert len(result.stored) == 1
    [conflict] = result.conflicts
    assert "at 2026-01-01T11:00:00.000001Z already stored with heart_rate 70" in (
        conflict.rejection.detail
    )
    stored = sql(database, "SELECT ts, heart_rate FROM heartbeats")
    assert stored == [(datetime(2026, 1, 1, 11, 0, 0, 1, tzinfo=UTC), 70)]


def test_conflicts_are_dead_lettered_with_their_source_and_handed_over_before_commit(
    write, database
):
    write(GROUP, [reading(7, 0, 70)], {})
    payload = b'{"customer_id": 7, "timestamp": "2026-01-01T11:00:00Z", "heart_rate": 71}'
    sources = [record(41, b"{}"), record(42, payload, headers=[("trace", b"t-1")])]
    seen_before_commit = []

    def on_conflicts(conflicts):
        # Another session does not see the batch yet: this runs inside the transaction.
        seen_before_commit.append(
            (
                [c.index for c in conflicts],
                sql(database, "SELECT count(*) FROM heartbeats")[0][0],
                sql(database, "SELECT count(*) FROM dead_letters")[0][0],
            )
        )

    result = write(
        GROUP,
        [reading(7, 5, 75), reading(7, 0, 71)],
        {Partition(TOPIC, 0): 43},
        sources=sources,
        on_conflicts=on_conflicts,
    )
    assert seen_before_commit == [([1], 1, 0)]
    assert result.dead_letters == 1
    rows = sql(
        database,
        'SELECT topic, partition, "offset", consumer_group, reason, detail, payload, headers'
        " FROM dead_letters",
    )
    assert rows == [
        (
            TOPIC,
            0,
            42,
            GROUP,
            "conflicting_reading",
            result.conflicts[0].rejection.detail,
            payload,
            [{"name": "trace", "value": base64.b64encode(b"t-1").decode()}],
        )
    ]


def test_a_failing_conflict_handler_leaves_nothing_of_the_batch_stored(write, database):
    write(GROUP, [reading(7, 0, 70)], {Partition(TOPIC, 0): 1})

    def dead_letter_to_kafka(_):
        raise KafkaUnavailable("dead-letter topic unreachable")

    with pytest.raises(KafkaUnavailable):
        write(
            GROUP,
            [reading(7, 1, 80), reading(7, 0, 71)],
            {Partition(TOPIC, 0): 3},
            sources=[record(1), record(2)],
            rejected=[(record(0, b"nope"), Rejection(Reason.INVALID_JSON, "Expecting value"))],
            on_conflicts=dead_letter_to_kafka,
        )
    assert sql(database, "SELECT count(*) FROM heartbeats") == [(1,)]
    assert sql(database, "SELECT count(*) FROM dead_letters") == [(0,)]
    assert sql(database, "SELECT next_offset FROM consumer_offsets") == [(1,)]
    # The store is still usable afterwards.
    write(GROUP, [reading(7, 1, 80)], {Partition(TOPIC, 0): 3})
    assert sql(database, "SELECT count(*) FROM heartbeats") == [(2,)]


def test_refused_messages_are_kept_once_with_key_headers_and_a_bounded_payload(write, database):
    big = bytes(range(256)) * (MAX_PAYLOAD_BYTES // 256 + 100)  # 89,600 bytes, not UTF-8
    refused = [
        (
            record(
                10,
                big,
                key=b"k" * 5000,
                headers=[("trace", b"abc"), ("trace", b"def"), ("bad\x00name", b"\x00")],
            ),
            Rejection(Reason.INVALID_UTF8, "byte 128 is not UTF-8"),
        ),
        (record(11, None, key=None), Rejection(Reason.EMPTY_PAYLOAD, "message has no value")),
        (record(12, b"[1]"), Rejection(Reason.UNPROCESSABLE, "ValueError: \x00\udcff")),
    ]
    offsets = {Partition(TOPIC, 0): 13}
    first = write(GROUP, [], offsets, rejected=refused)
    assert first.dead_letters == 3

    rows = sql(
        database,
        'SELECT "offset", reason, octet_length(key), key_size, headers, header_count,'
        " payload, payload_size, payload_truncated, detail, kafka_timestamp"
        ' FROM dead_letters ORDER BY "offset"',
    )
    assert [r[:4] for r in rows] == [
        (10, "invalid_utf8", 1024, 5000),
        (11, "empty_payload", None, None),
        (12, "unprocessable", 1, 1),
    ]
    headers = rows[0][4]
    assert [h["name"] for h in headers] == ["trace", "trace", "bad\ufffdname"]
    assert [base64.b64decode(h["value"]) for h in headers] == [b"abc", b"def", b"\x00"]
    assert rows[0][5] == 3
    assert rows[0][6] == big[:MAX_PAYLOAD_BYTES]
    assert rows[0][7:9] == (len(big), True)
    assert rows[1][6:9] == (None, None, False)
    assert rows[2][6:9] == (b"[1]", 3, False)
    assert rows[2][9] == "ValueError: \ufffd?"
    assert rows[0][10] == datetime(2026, 1, 1, 11, 0, tzinfo=UTC)

    # A late write of the same batch (a consumer that lost the partition) adds nothing.
    again = write(
        GROUP, [], offsets, rejected=[(r, Rejection(Reason.INVALID_JSON, "x")) for r, _ in refused]
    )
    assert again.dead_letters == 0
    reasons = sql(database, 'SELECT reason FROM dead_letters ORDER BY "offset"')
    assert reasons == [("invalid_utf8",), ("empty_payload",), ("unprocessable",)]


def test_many_large_headers_are_kept_whole_until_their_budget_and_counted(write, database):
    headers = [(f"h{i}", b"x" * 4096) for i in range(116)]
    write(
        GROUP,
        [],
        {},
        rejected=[
            (record(5, b"\xff" * 522_000, headers=headers), Rejection(Reason.INVALID_UTF8, "x"))
        ],
    )
    [(kept, count, size)] = sql(
        database,
        "SELECT jsonb_array_length(headers), header_count, octet_length(payload) FROM dead_letters",
    )
    assert (kept, count, size) == (3, 116, MAX_PAYLOAD_BYTES)


def test_a_batch_without_refused_messages_never_touches_the_dead_letter_table(write, database):
    sql(database, "ALTER TABLE dead_letters RENAME TO dead_letters_elsewhere")
    result = write(GROUP, [reading(1, 0, 70)], {Partition(TOPIC, 0): 1})
    assert len(result.stored) == 1
    with pytest.raises(FatalError, match="dead_letters"):
        write(GROUP, [], {}, rejected=[(record(3), Rejection(Reason.INVALID_JSON, "x"))])


def test_conflicts_are_only_looked_for_when_a_staged_reading_was_not_inserted(
    write, database, monkeypatch
):
    # A lookup that fails if it runs: a batch of new readings must not run it.
    monkeypatch.setattr(heartbeat.reading_rows, "FIND_CONFLICTS", "SELECT 1/0")
    result = write(GROUP, [reading(1, s, 70) for s in range(100)], {})
    assert len(result.stored) == 100
    with pytest.raises(psycopg.errors.DivisionByZero):
        write(GROUP, [reading(1, 0, 70)], {})


def test_sources_must_match_the_readings_one_to_one(store):
    with pytest.raises(ValueError, match="2 sources for 1 readings"):
        store.write_batch(GROUP, [reading(1, 0, 70)], {}, sources=[record(1), record(2)])
