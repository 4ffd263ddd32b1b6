"""`heartbeat dlq`: count, list and re-drive the dead letters kept in PostgreSQL.

``count`` and ``list`` only read. ``redrive`` produces the chosen dead letters
back to the readings topic (their key and payload as refused, their headers, and
a ``redriven_from`` header naming ``TOPIC:PARTITION:OFFSET``), waits until Kafka
has every one, then marks those ``redriven_at``. A re-driven reading that is now
valid is still stored once: ``heartbeats`` is keyed by (customer, instant), so a
second re-drive, or a crash between delivery and marking, only adds a duplicate.

Choosing: ``--source`` names rows (re-driven before or not); ``--reason`` and
``--all`` take the rows not re-driven yet. A row whose payload or key was cut
when it was kept is refused: what it would send is not what was refused.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from tabulate import tabulate

from heartbeat.dead_letter_rows import DeadLetter, Source
from heartbeat.errors import MessageRefused
from heartbeat.kafka import DeliveryReport, Headers, KafkaProducer
from heartbeat.settings import Settings
from heartbeat.store import DeadLetterCount, Store

EXIT_OK, EXIT_FAILED = 0, 1
REDRIVEN_FROM = "redriven_from"
DETAIL_COLUMN_CHARS = 60
# Every message is resolved (delivered or failed) before the flush below gives up.
MESSAGE_TIMEOUT_MS = 20_000
FLUSH_TIMEOUT_SECONDS = 30.0


# --- count and list ----------------------------------------------------------


def render_counts(counts: Sequence[DeadLetterCount], *, as_json: bool) -> str:
    total = sum(c.total for c in counts)
    redriven = sum(c.redriven for c in counts)
    if as_json:
        return json.dumps(
            {
                "total": total,
                "redriven": redriven,
                "reasons": [
                    {"reason": c.reason, "total": c.total, "redriven": c.redriven} for c in counts
                ],
            }
        )
    if not counts:
        return "no dead letters"
    rows = [[c.reason, c.total, c.redriven, c.total - c.redriven] for c in counts]
    rows.append(["(all)", total, redriven, total - redriven])
    return str(tabulate(rows, headers=["reason", "total", "redriven", "pending"]))


def as_dict(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as JSON: bytes in base64, the payload also as text when it is UTF-8."""
    return {
        "source": str(letter.source),
        "topic": letter.source.topic,
        "partition": letter.source.partition,
        "offset": letter.source.offset,
        "consumer_group": letter.consumer_group,
        "reason": letter.reason,
        "detail": letter.detail,
        "received_at": _iso(letter.received_at),
        "redriven_at": _iso(letter.redriven_at),
        "kafka_timestamp": _iso(letter.kafka_timestamp),
        "key": _base64(letter.key),
        "key_size": letter.key_size,
        "headers": [{"name": n, "value": _base64(v)} for n, v in letter.headers],
        "header_count": letter.header_count,
        "payload": _base64(letter.payload),
        "payload_text": _utf8(letter.payload),
        "payload_size": letter.payload_size,
        "payload_truncated": letter.payload_truncated,
    }


def render_list(letters: Sequence[DeadLetter], *, as_json: bool) -> str:
    if as_json:
        return "\n".join(json.dumps(as_dict(letter)) for letter in letters)
    if not letters:
        return "no dead letters"
    rows = [
        [
            str(d.source),
            _iso(d.received_at, timespec="seconds"),
            d.reason,
            _size(d),
            _iso(d.redriven_at, timespec="seconds") or "",
            _cut(d.detail),
        ]
        for d in letters
    ]
    return str(
        tabulate(rows, headers=["source", "received", "reason", "bytes", "redriven", "detail"])
    )


def show_counts(store: Store, *, as_json: bool, out: TextIO) -> int:
    print(render_counts(store.count_dead_letters(), as_json=as_json), file=out)
    return EXIT_OK


def show_list(store: Store, *, reason: str | None, limit: int, as_json: bool, out: TextIO) -> int:
    letters = store.dead_letters(reason=reason, limit=limit)
    if letters or not as_json:
        print(render_list(letters, as_json=as_json), file=out)
    return EXIT_OK


# --- redrive -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RedrivePlan:
    send: list[DeadLetter]
    refused: list[DeadLetter]  # payload or key cut when kept
    missing: list[Source]  # named with --source, not found (with that reason)


def plan_redrive(found: Sequence[DeadLetter], named: Sequence[Source] | None) -> RedrivePlan:
    """What a re-drive sends, refuses, and could not find among the rows ``named``."""
    present = {d.source for d in found}
    missing = [s for s in dict.fromkeys(named or ()) if s not in present]
    return RedrivePlan(
        send=[d for d in found if d.replayable],
        refused=[d for d in found if not d.replayable],
        missing=missing,
    )


def redrive_message(letter: DeadLetter) -> tuple[bytes | None, bytes | None, Headers]:
    """(key, value, headers) to produce again: as refused, plus where it was read."""
    headers = [*letter.headers, (REDRIVEN_FROM, str(letter.source).encode())]
    return letter.key, letter.payload, headers


def refusal(letter: DeadLetter) -> str:
    cut = []
    if letter.payload_truncated:
        cut.append(f"payload kept {len(letter.payload or b'')} of {letter.payload_size} bytes")
    if letter.key_truncated:
        cut.append(f"key kept {len(letter.key or b'')} of {letter.key_size} bytes")
    return f"refused {letter.source}: {', '.join(cut)}; a cut message cannot be re-driven"


ProducerFactory = Callable[..., KafkaProducer]


def send(
    settings: Settings,
    letters: Sequence[DeadLetter],
    *,
    producer_factory: ProducerFactory = KafkaProducer,
) -> tuple[list[Source], list[str]]:
    """Produce ``letters`` to the readings topic and wait: (delivered sources, errors)."""
    delivered: list[Source] = []
    errors: dict[Source, str] = {}

    def report(source: Source) -> Callable[[DeliveryReport], None]:
        def on_delivery(report: DeliveryReport) -> None:
            if report.error is None:
                delivered.append(source)
            else:
                errors[source] = report.error

        return on_delivery

    producer = producer_factory(
        settings, on_delivery=lambda _: None, extra={"message.timeout.ms": MESSAGE_TIMEOUT_MS}
    )
    for letter in letters:
        key, value, headers = redrive_message(letter)
        try:
            producer.produce(settings.kafka_topic, key, value, headers, report(letter.source))
        except MessageRefused as exc:
            errors[letter.source] = str(exc)
        producer.poll(0)
    if producer.flush(FLUSH_TIMEOUT_SECONDS):
        producer.purge()  # their reports now say so
    done = set(delivered)
    for letter in letters:
        if letter.source not in done and letter.source not in errors:
            errors[letter.source] = "not delivered in time"
    return delivered, [f"{source}: {error}" for source, error in errors.items()]


@dataclass(frozen=True, slots=True)
class Choice:
    """Which dead letters ``redrive`` takes: named ``sources`` (re-driven before or not),
    else those of ``reason`` not re-driven yet, else every one not re-driven yet."""

    reason: str | None = None
    sources: list[Source] | None = None


def redrive(
    settings: Settings,
    store: Store,
    choice: Choice,
    *,
    dry_run: bool,
    out: TextIO,
    err: TextIO,
    producer_factory: ProducerFactory = KafkaProducer,
    as_json: bool = False,
) -> int:
    """Re-drive the chosen dead letters; 0 if every one was sent and marked, else 1.

    With ``as_json`` what was (or would be) sent is one JSON object on ``out``; the
    problems still go to ``err`` as lines.
    """
    found = store.dead_letters(
        reason=choice.reason,
        sources=choice.sources,
        pending_only=choice.sources is None,
        newest_first=False,
    )
    plan = plan_redrive(found, choice.sources)
    if plan.missing:
        among = f" with reason {choice.reason}" if choice.reason else ""
        for source in plan.missing:
            print(f"heartbeat: no dead letter at {source}{among}", file=err)
        print("heartbeat: nothing was re-driven", file=err)
        return EXIT_FAILED
    for letter in plan.refused:
        print(f"heartbeat: {refusal(letter)}", file=err)
    topic = settings.kafka_topic

    def report(sent: Sequence[Source], redriven: int) -> None:
        print(
            json.dumps(
                {
                    "topic": topic,
                    "dry_run": dry_run,
                    "sent": [str(source) for source in sent],
                    "redriven": redriven,
                    "refused": [str(letter.source) for letter in plan.refused],
                }
            ),
            file=out,
        )

    if dry_run and as_json:
        report([letter.source for letter in plan.send], 0)
        return EXIT_FAILED if plan.refused else EXIT_OK
    if dry_run:
        for letter in plan.send:
            print(f"would re-drive {letter.source} ({letter.reason}) to {topic}", file=out)
        print(f"dry run: {len(plan.send)} to re-drive, {len(plan.refused)} refused", file=out)
        return EXIT_FAILED if plan.refused else EXIT_OK
    if not plan.send:
        if as_json:
            report([], 0)
        else:
            print("nothing to re-drive", file=out)
        return EXIT_FAILED if plan.refused else EXIT_OK
    delivered, errors = send(settings, plan.send, producer_factory=producer_factory)
    for error in errors:
        print(f"heartbeat: not re-driven {error}", file=err)
    marked = store.mark_redriven(delivered) if delivered else 0
    if as_json:
        report(delivered, marked)
        return EXIT_FAILED if errors or plan.refused else EXIT_OK
    print(
        f"re-drove {marked} of {len(plan.send)} dead letters to {topic}"
        + (f"; {len(plan.refused)} refused" if plan.refused else ""),
        file=out,
    )
    return EXIT_FAILED if errors or plan.refused else EXIT_OK


# --- formatting --------------------------------------------------------------


def _iso(value: datetime | None, timespec: str = "auto") -> str | None:
    return None if value is None else value.isoformat(timespec=timespec)


def _base64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode()


def _utf8(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _size(letter: DeadLetter) -> str:
    if letter.payload_size is None:
        return "null"
    return f"{letter.payload_size} (cut)" if letter.payload_truncated else str(letter.payload_size)


def _cut(detail: str) -> str:
    one_line = " ".join(detail.split())
    if len(one_line) <= DETAIL_COLUMN_CHARS:
        return one_line
    return one_line[: DETAIL_COLUMN_CHARS - 1] + "…"
