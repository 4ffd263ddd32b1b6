"""The Kafka broker crashing (SIGKILL) and coming back on its port and data while readings flow.

The module runs its own broker, so killing it leaves the shared one alone; the `pipeline`
fixture's topics live on it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from heartbeat_localstack.kafka import KafkaBroker
from heartbeat_localstack.ports import accepts_connections
from tests.integration.faults.harness import (
    Feeder,
    Lag,
    Member,
    account,
    fleet,
    make_workload,
    report,
)
from tests.integration.pipeline import sample
from tests.support.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Consumers lose a silent session quickly, and /readyz must notice a stall well before the
# drain bound. Both take effect once the consumer honours them.
DEFECT_ENV = {"KAFKA_SESSION_TIMEOUT_SECONDS": "10", "CONSUMER_STALL_SECONDS": "30"}
DRAIN_BOUND_SECONDS = 120
# A partition with lag that has not moved for this long must not be owned by a ready consumer
# (the stall setting above, plus room for a slow machine).
STALL_GRACE_SECONDS = 50


@pytest.fixture(scope="module")
def kafka_service(own_kafka_broker: KafkaBroker) -> KafkaBroker:
    return own_kafka_broker


def _owns(member: Member, count: int) -> bool:
    return sample(member.metrics(), "heartbeat_assigned_partitions") == count


def _worst(false_ready: list[tuple[str, int, int, float]]) -> list[str]:
    """Per (member, partition), the longest time it said ready with that partition stalled."""
    longest: dict[tuple[str, int], tuple[int, float]] = {}
    for name, partition, behind, still in false_ready:
        if still >= longest.get((name, partition), (0, 0.0))[1]:
            longest[(name, partition)] = (behind, still)
    return [
        f"{name} owning [{p}] (lag {behind}, still {still:.0f} s)"
        for (name, p), (behind, still) in sorted(longest.items())
    ]


# --- the faults --------------------------------------------------------------------------


def test_broker_killed_and_restarted_mid_stream_loses_nothing_and_stores_nothing_twice(
    pipeline, kafka_service, tmp_path
):
    broker = kafka_service
    port, pid = broker.port, broker.pid
    assert port is not None
    assert pid is not None
    workload = make_workload(customers=240, rounds=100, seed=87)  # 24,000 messages
    feeder = Feeder(pipeline.settings, workload, rate=1000)
    lag = Lag(pipeline)
    with fleet(pipeline, tmp_path) as consumers:
        consumers.spawn()
        consumers.spawn()
        wait_for(lambda: all(m.ready() for m in consumers.members), 60, "both consumers ready")
        feeder.start()
        time.sleep(6)
        killed_at = time.monotonic()
        broker.kill()
        # Gone at once, as after a crash: no process, nothing listening.
        assert not broker.is_running()
        assert not Path(f"/proc/{pid}").exists()
        assert not accepts_connections(port)
        time.sleep(8)
        broker.start()  # the messages before the kill are still there: `account` reads them
        assert broker.port == port
        assert broker.pid != pid
        feeder.wait(120)
        drained = lag.wait_drained(feeder, 180)
        assert not consumers.crashed()
        consumers.terminate_all()
    account(pipeline, workload, feeder)
    report("broker-sigkill", drained - killed_at, workload.readings, "down 8 s, from the kill")


def _crash_during_dead_letter_retries(pipeline, broker, tmp_path, *, consumers_count, down):
    """Consumers working through a backlog with invalid messages in it when the broker dies:
    each is in a dead-letter retry, loses its partitions while the broker is away, and gets
    partitions back after. Every partition must drain, and /readyz must not say ready while
    partitions with lag stand still."""
    workload = make_workload(customers=240, rounds=100, seed=88 + consumers_count)  # 24,000
    backlog = len(workload.messages) // 2
    feeder = Feeder(pipeline.settings, workload, rate=(len(workload.messages) - backlog) / down)
    lag = Lag(pipeline)
    false_ready: list[tuple[str, int, int, float]] = []
    with fleet(pipeline, tmp_path, DEFECT_ENV) as consumers:
        # One after the other: the second takes a contiguous half over from the first, so
        # whatever split the group settles on after the loss, each consumer is handed back
        # at least one partition it paused itself.
        for joined in range(1, consumers_count + 1):
            consumers.spawn()
            wait_for(
                lambda n=joined: all(_owns(m, 6 // n) for m in consumers.members),
                90,
                f"each of {joined} consumers owning {6 // joined} partitions",
            )
        feeder.produce_now(backlog)
        wait_for(lambda: pipeline.row_count() > 500, 30, "the backlog being stored")
        killed_at = time.monotonic()
        broker.kill()  # what is fetched but not stored yet includes invalid messages
        feeder.start()  # the producer keeps writing; its client holds the messages meanwhile
        time.sleep(down)
        broker.start()
        back_at = time.monotonic()

        def watch(current: dict[int, int]) -> None:
            stalled = {p: v for p, v in lag.still(current).items() if v[1] > STALL_GRACE_SECONDS}
            for member in consumers.members if stalled else []:
                owned = stalled.keys() & member.owned()
                if owned and member.ready():
                    false_ready.extend((member.name, p, *stalled[p]) for p in owned)

        try:
            drained = lag.wait_drained(feeder, DRAIN_BOUND_SECONDS, watch=watch)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc} (after the broker came back); "
                f"/readyz said ready while stalled: {_worst(false_ready)}"
            ) from None
        print(consumers.evidence())
        assert not consumers.crashed()
        consumers.terminate_all()
    account(pipeline, workload, feeder)
    assert not false_ready, f"/readyz said ready while stalled: {_worst(false_ready)}"
    return workload, drained - killed_at, drained - back_at


@pytest.mark.timeout(420)
def test_broker_crash_during_dead_letter_retries_with_two_consumers_drains_every_partition(
    pipeline, kafka_service, tmp_path
):
    workload, recovered, after = _crash_during_dead_letter_retries(
        pipeline, kafka_service, tmp_path, consumers_count=2, down=50
    )
    report(
        "broker-crash-in-dead-letter-retry-2-consumers",
        recovered,
        workload.readings,
        f"broker down 50 s, drained {after:.1f} s after its return",
    )


@pytest.mark.timeout(420)
def test_broker_crash_during_dead_letter_retries_with_one_consumer_drains_every_partition(
    pipeline, kafka_service, tmp_path
):
    workload, recovered, after = _crash_during_dead_letter_retries(
        pipeline, kafka_service, tmp_path, consumers_count=1, down=74
    )
    report(
        "broker-crash-in-dead-letter-retry-1-consumer",
        recovered,
        workload.readings,
        f"broker down 74 s, drained {after:.1f} s after its return",
    )
