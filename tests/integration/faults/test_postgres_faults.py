"""PostgreSQL crashing, staying down, freezing or locked while readings flow.

The module runs its own PostgreSQL server (the shared one stays up for other tests); the
`pipeline` fixture's database lives on it.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from heartbeat_localstack.ports import accepts_connections
from heartbeat_localstack.postgres import PostgresServer
from tests.integration.faults.harness import (
    Feeder,
    Lag,
    account,
    fleet,
    make_workload,
    report,
)
from tests.support.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def postgres_service(own_postgres: PostgresServer) -> PostgresServer:
    return own_postgres


# --- the tools ---------------------------------------------------------------------------


def test_a_crashed_postgres_cuts_its_sessions_and_recovers_committed_rows_on_start(
    own_postgres: PostgresServer,
) -> None:
    with psycopg.connect(own_postgres.conninfo, autocommit=True) as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS crash_probe (n int)")
        setup.execute("INSERT INTO crash_probe VALUES (1)")
    session = psycopg.connect(own_postgres.conninfo, autocommit=True)
    try:
        own_postgres.crash()
        assert not own_postgres.is_running()
        with pytest.raises(psycopg.OperationalError):
            session.execute("SELECT 1")
    finally:
        session.close()
        own_postgres.start()
    with psycopg.connect(own_postgres.conninfo, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM crash_probe").fetchone() == (1,)
        conn.execute("DROP TABLE crash_probe")
    assert "database system was interrupted" in own_postgres.log_path.read_text()


def test_a_hung_postgres_accepts_connections_but_answers_nothing_until_resumed(
    own_postgres: PostgresServer,
) -> None:
    session = psycopg.connect(own_postgres.conninfo, autocommit=True)
    answered = threading.Event()

    def query() -> None:
        session.execute("SELECT 1")
        answered.set()

    own_postgres.hang()
    try:
        assert own_postgres.port is not None
        assert accepts_connections(own_postgres.port), "the kernel still accepts connections"
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(own_postgres.conninfo, connect_timeout=2).close()
        waiting = threading.Thread(target=query, daemon=True)
        waiting.start()
        assert not answered.wait(3), "a query got an answer from a hung server"
    finally:
        own_postgres.resume()
    assert answered.wait(10), "the query was answered after resume()"
    session.close()
    with psycopg.connect(own_postgres.conninfo, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


# --- the faults --------------------------------------------------------------------------


def test_postgresql_crashed_twice_mid_stream_loses_nothing_and_stores_nothing_twice(
    pipeline, postgres_service, tmp_path
):
    workload = make_workload(customers=240, rounds=100, seed=83)  # 24,000 messages
    feeder = Feeder(pipeline.settings, workload, rate=1000)
    lag = Lag(pipeline)
    with fleet(pipeline, tmp_path) as consumers:
        consumers.spawn()
        consumers.spawn()
        wait_for(lambda: all(m.ready() for m in consumers.members), 60, "both consumers ready")
        feeder.start()
        for _ in range(2):
            time.sleep(6)
            crashed_at = time.monotonic()
            postgres_service.crash()
            time.sleep(4)
            postgres_service.start()
        feeder.wait(60)
        drained = lag.wait_drained(feeder, 150)
        assert not consumers.crashed()
        consumers.terminate_all()
    account(pipeline, workload, feeder)
    report(
        "postgres-crash",
        drained - crashed_at,
        workload.readings,
        "two immediate shutdowns of 4 s, from the second",
    )


@pytest.mark.timeout(420)
def test_postgresql_down_for_70_seconds_with_a_rebalance_meanwhile_loses_nothing(
    pipeline, postgres_service, tmp_path
):
    # max.poll.interval.ms is not a setting: the consumers run with librdkafka's defaults
    # (session 45 s, max poll interval 300 s). The outage outlasts the session timeout, and a
    # member joins during it, so partitions are handed over while PostgreSQL is away.
    workload = make_workload(customers=240, rounds=100, seed=84)  # 24,000 messages
    feeder = Feeder(pipeline.settings, workload, rate=300)
    lag = Lag(pipeline)
    with fleet(pipeline, tmp_path) as consumers:
        consumers.spawn()
        consumers.spawn()
        wait_for(lambda: all(m.ready() for m in consumers.members), 60, "both consumers ready")
        feeder.start()
        time.sleep(5)
        postgres_service.stop()
        wait_for(lambda: not any(m.ready() for m in consumers.members), 30, "both report not-ready")
        time.sleep(15)
        consumers.spawn()  # a pod restarted elsewhere joins mid-outage
        time.sleep(70 - 15 - 5)
        postgres_service.start()
        back_at = time.monotonic()
        stored_before = sum(pipeline.stored_offsets().values())
        resumed = wait_for(
            lambda: sum(pipeline.stored_offsets().values()) > stored_before and time.monotonic(),
            120,
            "storing again",
        )
        feeder.wait(90)
        drained = lag.wait_drained(feeder, 150)
        assert not consumers.crashed()
        consumers.terminate_all()
    account(pipeline, workload, feeder)
    report(
        "postgres-down-70s",
        drained - back_at,
        workload.readings,
        f"storing again {resumed - back_at:.1f} s after PostgreSQL was back; "
        "default session and poll intervals",
    )
    assert resumed - back_at <= 20, "storing resumes within seconds of PostgreSQL's return"


@pytest.mark.parametrize("fault", ["down", "hung"])
def test_sigterm_while_postgresql_is_down_or_hung_exits_0_within_20_seconds(
    pipeline, postgres_service, tmp_path, fault
):
    workload = make_workload(customers=200, rounds=100, seed=85)  # 20,000 messages
    feeder = Feeder(pipeline.settings, workload, rate=0)
    feeder.produce_now(len(workload.messages))  # a backlog: the consumer is mid-batch
    lag = Lag(pipeline)
    # The stopped member's partitions go to its replacement once its session ends.
    with fleet(pipeline, tmp_path, {"KAFKA_SESSION_TIMEOUT_SECONDS": "10"}) as consumers:
        first = consumers.spawn()
        wait_for(lambda: pipeline.row_count() > 2000, 60, "storing under way")
        if fault == "down":
            postgres_service.crash()
            wait_for(lambda: not first.ready(), 30, "the consumer reports not-ready")
            time.sleep(3)  # in its retry loop
        else:
            postgres_service.hang()
            time.sleep(8)  # its next write hangs on a connection that never answers
        try:
            code, took = consumers.terminate(first, timeout=40)
        finally:
            if fault == "down":
                postgres_service.start()
            else:
                postgres_service.resume()
        back_at = time.monotonic()
        consumers.spawn()  # the replacement finishes the stream
        drained = lag.wait_drained(feeder, 150)
        consumers.terminate_all()
    account(pipeline, workload, feeder)
    report(
        f"sigterm-postgres-{fault}",
        drained - back_at,
        workload.readings,
        f"SIGTERM exit {code} after {took:.1f} s; recovery from PostgreSQL's return",
    )
    assert code == 0, f"exit code {code} after {took:.1f} s"
    assert took <= 20, f"SIGTERM took {took:.1f} s"


@pytest.mark.timeout(420)
def test_a_table_lock_held_for_90_seconds_shows_as_not_ready_and_loses_nothing(
    pipeline, postgres_service, tmp_path
):
    workload = make_workload(customers=240, rounds=100, seed=86)  # 24,000 messages
    feeder = Feeder(pipeline.settings, workload, rate=220)
    lag = Lag(pipeline)
    env = {"DATABASE_LOCK_TIMEOUT_SECONDS": "5"}
    not_ready_after: dict[str, float] = {}
    with fleet(pipeline, tmp_path, env) as consumers:
        consumers.spawn()
        consumers.spawn()
        wait_for(lambda: all(m.ready() for m in consumers.members), 60, "both consumers ready")
        feeder.start()
        wait_for(lambda: pipeline.row_count() > 500, 30, "storing under way")
        with psycopg.connect(pipeline.conninfo) as locker:
            locker.execute("LOCK TABLE heartbeats")  # ACCESS EXCLUSIVE, until rollback
            locked_at = time.monotonic()
            while time.monotonic() - locked_at < 90:
                for member in consumers.members:
                    if member.name not in not_ready_after and not member.ready():
                        not_ready_after[member.name] = time.monotonic() - locked_at
                time.sleep(1)
            locker.rollback()
        released_at = time.monotonic()
        drained = lag.wait_drained(feeder, 150)
        assert not consumers.crashed()
        consumers.terminate_all()
    account(pipeline, workload, feeder)
    seen = ", ".join(f"{n} after {s:.0f} s" for n, s in sorted(not_ready_after.items()))
    report(
        "table-lock-90s",
        drained - released_at,
        workload.readings,
        f"not-ready: {seen or 'never'}; from the release",
    )
    assert len(not_ready_after) == 2, f"/readyz went not-ready only for: {seen or 'none'}"
