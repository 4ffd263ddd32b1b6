"""An invalid message near the broker's size limit, with many large headers, amid readings.

Its dead letter, with the original headers kept and the reason headers added, would not fit
the dead-letter topic: the consumer must send it cut (or a minimal one) and go on, not exit
and read the same message again after every restart.
"""

from __future__ import annotations

import random
import time

import pytest

from tests.integration.faults.harness import (
    Feeder,
    Lag,
    account,
    fleet,
    insert_invalid,
    make_workload,
    report,
)
from tests.support.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VALUE_BYTES = 522_000
KEY_BYTES = 1_000
HEADERS = 116
HEADER_BYTES = 4_096


def poison() -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """Not UTF-8 (it starts with 0xff), so invalid; together just under 1,000,000 bytes."""
    rng = random.Random(7)
    value = b"\xff" + rng.randbytes(VALUE_BYTES - 1)
    key = b"k" * KEY_BYTES
    headers = [(f"header-{i:03d}", rng.randbytes(HEADER_BYTES)) for i in range(HEADERS)]
    return key, value, headers


def test_a_huge_invalid_message_with_large_headers_is_dead_lettered_without_a_crash_loop(
    pipeline, tmp_path
):
    base = make_workload(customers=200, rounds=100, seed=92)  # 20,000 messages
    middle = len(base.messages) // 2
    workload = insert_invalid(base, middle, poison())
    feeder = Feeder(pipeline.settings, workload, rate=0)
    lag = Lag(pipeline)
    restarts: list[str] = []

    with fleet(pipeline, tmp_path) as consumers:
        consumers.spawn()
        wait_for(lambda: consumers.members[0].ready(), 60, "the consumer ready")

        def restart_exited(_: dict[int, int]) -> None:
            # Each restart reads the poison message again: a crash loop shows as many.
            restarts.extend(consumers.replace_exited())

        produced_at = time.monotonic()
        feeder.produce_now(len(workload.messages))
        try:
            drained = lag.wait_drained(feeder, 90, watch=restart_exited)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; restarts: {restarts}") from None
        consumers.terminate_all()
    account(pipeline, workload, feeder)
    (letter,) = [
        r
        for r in pipeline.topic_records(pipeline.settings.kafka_dlq_topic)
        if dict(r.headers).get("source_offset") == str(feeder.coordinates[middle][1]).encode()
        and dict(r.headers).get("source_partition") == str(feeder.coordinates[middle][0]).encode()
    ]
    size = sum(len(n) + len(v) for n, v in letter.headers)
    size += len(letter.value or b"") + len(letter.key or b"")
    report(
        "poison-message",
        drained - produced_at,
        workload.readings,
        f"dead letter of {size} bytes, {len(letter.headers)} headers; {len(restarts)} restarts",
    )
    assert dict(letter.headers)["reason"] == b"invalid_utf8"
    assert not restarts, f"the consumer exited instead of dead-lettering: {restarts}"
