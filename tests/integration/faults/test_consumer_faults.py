"""Consumer processes that die or come and go while readings flow: nothing lost, nothing twice."""

from __future__ import annotations

import random
import time

import pytest

from tests.integration.faults.harness import (
    Feeder,
    Lag,
    account,
    assert_exited_promptly,
    fleet,
    make_workload,
    report,
)
from tests.support.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_consumers_killed_with_sigkill_every_few_seconds_still_store_each_reading_once(
    pipeline, tmp_path
):
    workload = make_workload(customers=240, rounds=100, seed=81)  # 24,000 messages
    feeder = Feeder(pipeline.settings, workload, rate=1000)
    lag = Lag(pipeline)
    chooser = random.Random(81)
    # A killed member's partitions wait for its session to time out: keep that short.
    with fleet(pipeline, tmp_path, {"KAFKA_SESSION_TIMEOUT_SECONDS": "10"}) as consumers:
        for _ in range(3):
            consumers.spawn()
        wait_for(lambda: any(m.ready() for m in consumers.members), 60, "a consumer ready")
        feeder.start()
        kills = 0
        last_kill = time.monotonic()
        while not feeder.is_done() or kills < 6:
            time.sleep(2.5)
            consumers.kill(chooser.choice(consumers.members))
            last_kill = time.monotonic()
            kills += 1
            consumers.spawn()  # the replacement a Deployment would start
        feeder.wait(60)
        drained = lag.wait_drained(feeder, 180)
        assert not consumers.crashed()
        consumers.terminate_all()
    account(pipeline, workload, feeder)
    report(
        "consumer-sigkill",
        drained - last_kill,
        workload.readings,
        f"{kills} SIGKILLs among 3 consumers, session timeout 10 s, from the last kill",
    )


def test_group_churning_1_3_1_4_2_consumers_while_producing_stores_each_reading_once(
    pipeline, tmp_path
):
    workload = make_workload(customers=240, rounds=100, seed=82)  # 24,000 messages
    feeder = Feeder(pipeline.settings, workload, rate=1000)
    lag = Lag(pipeline)
    # A member that leaves mid-rebalance may exit before its leave reaches the coordinator;
    # with the default 45 s session the group then waits for it that long.
    with fleet(pipeline, tmp_path, {"KAFKA_SESSION_TIMEOUT_SECONDS": "10"}) as consumers:
        consumers.spawn()
        wait_for(lambda: consumers.members[0].ready(), 60, "the first consumer ready")
        feeder.start()
        last_change = time.monotonic()
        for size in (3, 1, 4, 2):
            time.sleep(5)
            while len(consumers.members) < size:
                consumers.spawn()
            while len(consumers.members) > size:
                consumers.leave(consumers.members[0])  # SIGTERM, as a scale-down sends
            last_change = time.monotonic()
        feeder.wait(90)
        drained = lag.wait_drained(feeder, 180)
        assert not consumers.crashed()
        consumers.wait_left(60)
        consumers.terminate_all()
    account(pipeline, workload, feeder)
    report(
        "group-churn",
        drained - last_change,
        workload.readings,
        "1 -> 3 -> 1 -> 4 -> 2 consumers, session timeout 10 s, from the last change",
    )
    # Members that left mid-rebalance exit 0 within Kubernetes' grace period, too.
    assert_exited_promptly(consumers)
