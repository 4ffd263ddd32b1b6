"""Lag and stalls: decided from stored positions, brokers' end offsets and a clock."""

import threading

import pytest

from heartbeat.errors import KafkaUnavailable
from heartbeat.kafka import Partition
from heartbeat.progress import EndOffsetsPoller, Progress, describe_stall

P0, P1, P2 = Partition("t", 0), Partition("t", 1), Partition("t", 2)


def progress(stall: float = 60, *, from_start: bool = True) -> Progress:
    return Progress(stall, from_start=from_start)


def test_lag_counts_from_the_position_stored_in_postgresql_even_before_any_write():
    p = progress()
    p.track(P0, 40, now=0)
    p.track(P1, None, now=0)
    p.observe({P0: (0, 100), P1: (10, 25), P2: (0, 999)})
    assert p.lag(P0) == 60  # 100 readable, 40 stored
    assert p.lag(P1) == 15  # nothing stored yet: all from the log start (earliest)
    assert p.lag(P2) is None  # not ours


def test_with_latest_reset_a_partition_with_nothing_stored_has_no_lag_yet():
    p = progress(from_start=False)
    p.track(P0, None, now=0)
    p.observe({P0: (10, 25)})
    assert p.lag(P0) == 0


def test_lag_is_unknown_until_the_ends_were_read_once():
    p = progress()
    p.track(P0, 5, now=0)
    assert p.lag(P0) is None
    assert p.stalled(now=10_000) == []


def test_a_position_below_the_log_start_counts_only_what_is_still_readable():
    p = progress()
    p.track(P0, 3, now=0)
    p.observe({P0: (50, 80)})  # retention removed 3..49
    assert p.lag(P0) == 30


@pytest.mark.parametrize(
    ("since_advance", "ends", "stalled"),
    [
        (59, (0, 100), False),  # not long enough
        (60, (0, 100), True),  # lag and no advance for the whole stall time
        (600, (0, 40), False),  # no lag: idle, not stalled
    ],
)
def test_a_partition_stalls_when_it_has_lag_and_has_not_advanced_for_the_stall_time(
    since_advance, ends, stalled
):
    p = progress(stall=60)
    p.track(P0, 40, now=0)
    p.observe({P0: ends})
    assert p.stalled(now=since_advance) == ([P0] if stalled else [])


def test_each_partition_is_judged_on_its_own_so_a_partial_stall_shows():
    p = progress(stall=60)
    p.track(P0, 0, now=0)
    p.track(P1, 0, now=0)
    p.observe({P0: (0, 500), P1: (0, 500)})
    assert p.advance({P0: 100}, now=50) == [P0]
    assert p.stalled(now=70) == [P1]  # P0 advanced 20 s ago, P1 never


def test_advancing_resets_the_clock_but_an_unchanged_position_does_not():
    p = progress(stall=60)
    p.track(P0, 10, now=0)
    p.observe({P0: (0, 100)})
    assert p.advance({P0: 10}, now=30) == []  # the same position again
    assert p.stalled(now=61) == [P0]
    assert p.advance({P0: 11}, now=61) == [P0]
    assert p.stalled(now=100) == []


def test_a_forgotten_partition_is_neither_lagging_nor_stalled_and_takes_no_advance():
    p = progress(stall=1)
    p.track(P0, 0, now=0)
    p.observe({P0: (0, 10)})
    p.forget([P0])
    assert p.advance({P0: 5}, now=5) == []
    assert p.stalled(now=100) == []
    assert p.positions() == {}


def test_positions_lists_what_is_known_to_be_stored():
    p = progress()
    p.track(P0, 7, now=0)
    p.track(P1, None, now=0)
    assert p.positions() == {P0: 7}


def test_the_stall_description_names_partitions_and_their_lag():
    text = describe_stall([P0, P1], 180, {P0: 12, P1: 3})
    assert text == "2 partition(s) with lag have not advanced for 180s: t[0] lag 12, t[1] lag 3"


def test_the_poller_keeps_the_last_ends_when_the_brokers_do_not_answer():
    answers = [{P0: (0, 10)}, KafkaUnavailable("down")]

    def read(partitions, timeout):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    poller = EndOffsetsPoller(read)
    poller.watch([P0])
    poller.poll_once()
    assert poller.latest() == {P0: (0, 10)}
    poller.poll_once()
    assert poller.latest() == {P0: (0, 10)}


def test_the_poller_reads_in_its_own_thread_until_stopped():
    read_twice = threading.Event()
    calls = []

    def read(partitions, timeout):
        calls.append(list(partitions))
        if len(calls) >= 2:
            read_twice.set()
        return {p: (0, len(calls)) for p in partitions}

    poller = EndOffsetsPoller(read, interval=0.01)
    poller.watch([P1, P0])
    poller.start()
    assert read_twice.wait(5)
    poller.stop()
    assert calls[0] == [P0, P1]
    assert poller.latest()[P0][0] == 0
