"""`heartbeat dlq`: what count and list print, and what a re-drive sends, refuses and marks."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime

import pytest

from heartbeat import dlq
from heartbeat.cli import main
from heartbeat.dead_letter_rows import DeadLetter, Source
from heartbeat.kafka import DeliveryReport
from heartbeat.settings import Settings
from heartbeat.store import DeadLetterCount

RECEIVED = datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)


def letter(offset: int, **changes: object) -> DeadLetter:
    fields: dict[str, object] = {
        "source": Source("heartbeats", 1, offset),
        "consumer_group": "g",
        "reason": "timestamp_in_future",
        "detail": "timestamp 2026-01-01T12:10:00+00:00 is more than 300s ahead",
        "key": b"7",
        "key_size": 1,
        "headers": [("trace", b"abc")],
        "header_count": 1,
        "payload": b'{"customer_id": 7}',
        "payload_size": 18,
        "payload_truncated": False,
        "kafka_timestamp": None,
        "received_at": RECEIVED,
    }
    fields.update(changes)
    return DeadLetter(**fields)  # type: ignore[arg-type]


CUT = letter(9, payload=b"x" * 10, payload_size=90_000, payload_truncated=True)


class FakeStore:
    def __init__(self, letters: list[DeadLetter]) -> None:
        self.letters = letters
        self.asked: list[dict[str, object]] = []
        self.marked: list[Source] = []

    def dead_letters(self, **filters: object) -> list[DeadLetter]:
        self.asked.append(filters)
        sources = filters.get("sources")
        return [d for d in self.letters if sources is None or d.source in sources]

    def mark_redriven(self, sources: list[Source]) -> int:
        self.marked += sources
        return len(sources)


class FakeProducer:
    """Delivers everything on flush, except the offsets told to fail."""

    def __init__(self, failing: set[int]) -> None:
        self.failing = failing
        self.sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
        self._pending = []

    def __call__(self, settings, **_):
        return self

    def produce(self, topic, key, value, headers, on_delivery):
        self.sent.append((topic, key, value, headers))
        self._pending.append(on_delivery)

    def poll(self, timeout=0.0):
        return 0

    def flush(self, timeout):
        for i, callback in enumerate(self._pending):
            offset = int(dict(self.sent[i][3])["redriven_from"].decode().rsplit(":", 1)[1])
            error = "Broker: Unknown topic" if offset in self.failing else None
            callback(DeliveryReport("heartbeats", 0, i, error))
        self._pending = []
        return 0

    def purge(self):
        pass


SETTINGS = Settings(kafka_topic="heartbeats")


def run(store, choice, *, dry_run=False, failing=()):
    out, err = io.StringIO(), io.StringIO()
    producer = FakeProducer(set(failing))
    code = dlq.redrive(
        SETTINGS, store, choice, dry_run=dry_run, out=out, err=err, producer_factory=producer
    )
    return code, out.getvalue(), err.getvalue(), producer.sent


def test_redrive_sends_key_payload_and_headers_plus_the_source_then_marks_them():
    store = FakeStore([letter(3), letter(4)])
    code, out, err, sent = run(store, dlq.Choice(reason="timestamp_in_future"))
    assert code == 0
    assert err == ""
    assert sent == [
        (
            "heartbeats",
            b"7",
            b'{"customer_id": 7}',
            [("trace", b"abc"), ("redriven_from", f"heartbeats:1:{o}".encode())],
        )
        for o in (3, 4)
    ]
    assert store.marked == [Source("heartbeats", 1, 3), Source("heartbeats", 1, 4)]
    assert "re-drove 2 of 2 dead letters to heartbeats" in out
    # By reason: only the ones not re-driven yet, in the order they were read.
    assert store.asked == [
        {
            "reason": "timestamp_in_future",
            "sources": None,
            "pending_only": True,
            "newest_first": False,
        }
    ]


def test_named_sources_are_taken_even_if_re_driven_before():
    store = FakeStore([letter(3, redriven_at=RECEIVED)])
    code, *_ = run(store, dlq.Choice(sources=[Source("heartbeats", 1, 3)]))
    assert code == 0
    assert store.asked[0]["pending_only"] is False
    assert store.marked == [Source("heartbeats", 1, 3)]


def test_a_cut_dead_letter_is_refused_by_name_and_the_others_still_go():
    store = FakeStore([letter(3), CUT])
    code, out, err, sent = run(store, dlq.Choice(reason="timestamp_in_future"))
    assert code == 1
    assert "refused heartbeats:1:9: payload kept 10 of 90000 bytes" in err
    assert len(sent) == 1
    assert store.marked == [Source("heartbeats", 1, 3)]
    assert "1 refused" in out


def test_a_named_source_that_is_not_there_stops_before_anything_is_sent():
    store = FakeStore([letter(3)])
    choice = dlq.Choice(sources=[Source("heartbeats", 1, 3), Source("heartbeats", 1, 99)])
    code, _, err, sent = run(store, choice)
    assert code == 1
    assert "no dead letter at heartbeats:1:99" in err
    assert "nothing was re-driven" in err
    assert sent == []
    assert store.marked == []


def test_an_undelivered_dead_letter_is_reported_and_not_marked():
    store = FakeStore([letter(3), letter(4)])
    code, out, err, _ = run(store, dlq.Choice(), failing={4})
    assert code == 1
    assert "not re-driven heartbeats:1:4: Broker: Unknown topic" in err
    assert store.marked == [Source("heartbeats", 1, 3)]
    assert "re-drove 1 of 2" in out


def test_a_dry_run_says_what_would_go_and_sends_nothing():
    store = FakeStore([letter(3), CUT])
    code, out, err, sent = run(store, dlq.Choice(), dry_run=True)
    assert sent == []
    assert store.marked == []
    assert "would re-drive heartbeats:1:3 (timestamp_in_future) to heartbeats" in out
    assert "dry run: 1 to re-drive, 1 refused" in out
    assert "refused heartbeats:1:9" in err
    assert code == 1


def test_nothing_to_redrive_is_said_and_is_not_a_failure():
    code, out, _, sent = run(FakeStore([]), dlq.Choice(reason="invalid_json"))
    assert (code, sent) == (0, [])
    assert "nothing to re-drive" in out


def test_counts_are_shown_per_reason_with_a_total():
    counts = [DeadLetterCount("invalid_json", 5, 1), DeadLetterCount("conflicting_reading", 2, 0)]
    table = dlq.render_counts(counts, as_json=False).splitlines()
    assert table[0].split() == ["reason", "total", "redriven", "pending"]
    assert table[2].split() == ["invalid_json", "5", "1", "4"]
    assert table[3].split() == ["conflicting_reading", "2", "0", "2"]
    assert table[4].split() == ["(all)", "7", "1", "6"]
    assert json.loads(dlq.render_counts(counts, as_json=True)) == {
        "total": 7,
        "redriven": 1,
        "reasons": [
            {"reason": "invalid_json", "total": 5, "redriven": 1},
            {"reason": "conflicting_reading", "total": 2, "redriven": 0},
        ],
    }
    assert dlq.render_counts([], as_json=False) == "no dead letters"


def test_the_list_shows_source_reason_size_and_a_one_line_detail():
    rows = dlq.render_list([letter(3, detail="line one\nline two " + "x" * 80), CUT], as_json=False)
    lines = rows.splitlines()
    assert lines[0].split() == ["source", "received", "reason", "bytes", "redriven", "detail"]
    assert lines[2].startswith("heartbeats:1:3")
    assert "2026-01-01T12:00:05+00:00" in lines[2]
    assert "line one line two xxx" in lines[2]
    assert lines[2].endswith("…")
    assert "90000 (cut)" in lines[3]


def test_the_json_list_has_one_object_per_line_with_bytes_in_base64():
    [line] = dlq.render_list([letter(3, payload=b"\xff\x00")], as_json=True).splitlines()
    row = json.loads(line)
    assert row["source"] == "heartbeats:1:3"
    assert row["payload"] == "/wA="
    assert row["payload_text"] is None
    assert row["key"] == "Nw=="
    assert row["headers"] == [{"name": "trace", "value": "YWJj"}]
    assert row["received_at"] == "2026-01-01T12:00:05+00:00"
    assert row["redriven_at"] is None


@pytest.mark.parametrize("detail", ["short", "x" * 59, "x" * 60])
def test_a_detail_that_fits_its_column_is_shown_whole(detail):
    assert detail in dlq.render_list([letter(1, detail=detail)], as_json=False)


@pytest.fixture
def command(monkeypatch, tmp_path):
    """main() as a user runs it, away from any .env, with logging put back afterwards."""
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    return main


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["dlq", "list", "--limit", "-1"], "argument --limit: expected a whole number from 1"),
        (["dlq", "list", "--limit", "0"], "argument --limit"),
        (["dlq", "list", "--limit", "many"], "got 'many'"),
        (["dlq", "list", "--reason", "typo"], "argument --reason: invalid choice: 'typo'"),
        (["dlq", "redrive", "--source", "heartbeats:1"], "is not TOPIC:PARTITION:OFFSET"),
        (["dlq", "redrive", "--source", "t:0:-5"], "offset '-5' is not a number >= 0"),
        (["dlq"], "required: ACTION"),
    ],
)
def test_a_bad_dlq_option_is_a_usage_error_with_exit_2_and_no_traceback(
    command, capsys, argv, says
):
    with pytest.raises(SystemExit) as exit_:
        command(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert says in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["dlq", "redrive"], "choose what to re-drive"),
        (["dlq", "redrive", "--dry-run"], "choose what to re-drive"),
        (["dlq", "redrive", "--all", "--reason", "invalid_json"], "--all takes no --reason"),
    ],
)
def test_a_redrive_that_chooses_nothing_or_too_much_is_refused_before_any_connection(
    command, capsys, argv, says
):
    assert command(argv) == 2
    assert says in capsys.readouterr().err
