"""Static membership: a consumer restarted under the same KAFKA_GROUP_INSTANCE_ID gets its
partitions back without a group-wide rebalance, as long as it returns within the session
timeout; the other member keeps its partitions the whole time."""

from __future__ import annotations

import pytest

from tests.integration.pipeline import (
    fixed_readings,
    sample,
    scrape,
    terminate,
    valid_keys,
)
from tests.support.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_static_member_restarted_within_the_session_timeout_keeps_the_group_stable(
    pipeline, tmp_path
):
    readings = fixed_readings(customers=60, rounds=100, seed=47)  # 6,000 readings
    ports = {name: pipeline.free_port() for name in ("a", "b")}
    logs = {name: tmp_path / f"consumer-{name}.log" for name in ports}

    def spawn(name: str):
        env = {
            "METRICS_PORT": str(ports[name]),
            "KAFKA_GROUP_INSTANCE_ID": f"consumer-{name}",
            "KAFKA_SESSION_TIMEOUT_SECONDS": "60",
        }
        return pipeline.spawn("consume", env=env, log=logs[name])

    def assigned(name: str) -> float:
        return sample(scrape(ports[name]), "heartbeat_assigned_partitions")

    consumers = {"a": spawn("a")}
    try:
        wait_for(lambda: assigned("a") == 6.0, 60, "a owning all six")
        consumers["b"] = spawn("b")
        wait_for(lambda: [assigned(n) for n in "ab"] == [3.0, 3.0], 60, "the split")
        pipeline.produce_readings(readings[:3000])
        wait_for(lambda: pipeline.row_count() > 0, 60, "storing under way")
        b_log_before = logs["b"].read_text()

        # a goes away and comes back under the same id, well within the session timeout:
        # static members do not leave the group on close, so nothing moves.
        assert terminate(consumers["a"]) == 0
        consumers["a"] = spawn("a")
        wait_for(lambda: assigned("a") == 3.0, 60, "a owning its three partitions again")
        pipeline.produce_readings(readings[3000:])
        expected = valid_keys(readings)
        wait_for(lambda: pipeline.row_count() >= len(expected), 90, "every valid reading stored")
        wait_for(
            lambda: sum(pipeline.stored_offsets().values()) == len(readings), 30, "all offsets"
        )
        b_log_after = logs["b"].read_text()[len(b_log_before) :]
        assert assigned("b") == 3.0
        assert "revoked" not in b_log_after, b_log_after
        assert "lost" not in b_log_after, b_log_after
        assert "assigned" not in b_log_after, b_log_after
    finally:
        for process in consumers.values():
            if process.poll() is None:
                assert terminate(process) == 0
    assert pipeline.stored_keys() == valid_keys(readings)
    assert pipeline.row_count() == len(valid_keys(readings))
