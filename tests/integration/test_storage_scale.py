"""Storage at scale: 10 million readings for 10,000 customers over 10 days.

Every SQL panel of the dashboards (over the last hour, which reads the readings, and
over 6 and 24 hours, which read the rollups) and every `heartbeat stats` query is timed
and printed; each must answer well within a generous bound (the aim is 200 ms, the
machine is shared). Then `heartbeat maintain` drops the expired oldest day and leaves
every other reading and every rollup in place.

The database is built in SQL (tests/benchmarks/storage_data.py): about a minute on two
shared cores. HEARTBEAT_STORAGE_READINGS sizes it otherwise; `make bench-storage` runs
the same at 100 million.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

import psycopg
import pytest

from heartbeat.settings import Settings
from tests.benchmarks import storage_data
from tests.integration.pipeline import create_database, drop_database, unique

pytestmark = [pytest.mark.integration, pytest.mark.slow]

READINGS = int(os.environ.get("HEARTBEAT_STORAGE_READINGS", "10000000"))
AIM = 0.2  # seconds: what a dashboard panel should take
BOUND = 1.0  # seconds: what fails the test on a busy shared machine
SPANS = {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "24h": timedelta(hours=24)}
WINDOWS = SPANS


@pytest.fixture(scope="module")
def fleet(postgres_service):
    name = unique("hb_scale").replace("-", "_")
    conninfo = create_database(postgres_service.conninfo, name)
    settings = Settings(_env_file=None, database_url=conninfo)  # type: ignore[call-arg]
    started = time.perf_counter()
    built = storage_data.build(conninfo, READINGS, settings=settings)
    elapsed = time.perf_counter() - started
    steps = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in built.seconds.items())
    print(f"\nbuilt {built.readings:,} readings in {elapsed:.1f} s ({steps})")
    yield conninfo, settings, built
    drop_database(postgres_service.conninfo, name)


def test_the_fleet_is_stored_as_the_pipeline_leaves_it(fleet):
    conninfo, _, built = fleet
    assert built.readings >= READINGS * 0.99  # less the stale customers' last 20 minutes
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT (SELECT sum(readings) FROM heartbeat_minutes),"
            " (SELECT sum(readings) FROM heartbeat_fleet_minutes),"
            " (SELECT count(*) FROM customer_last_seen),"
            " (SELECT count(*) FROM heartbeats_default),"
            " (SELECT count(*) FROM heartbeat_minutes_pending),"
            " (SELECT sum(readings) FROM heartbeat_hours_live),"
            " (SELECT count(*) FROM heartbeat_hours_pending)"
        ).fetchone()
    assert row == (built.readings, built.readings, storage_data.CUSTOMERS, 0, 0, built.readings, 1)


def test_every_sql_panel_and_stats_query_answers_within_the_bound(fleet, capsys):
    conninfo, _, _ = fleet
    queries = storage_data.dashboard_queries(conninfo, SPANS)
    queries += storage_data.stats_queries(WINDOWS)
    timings = storage_data.time_queries(conninfo, queries)
    with capsys.disabled():
        print(f"\nquery timings at {READINGS:,} readings (jit off):")
        storage_data.print_timings(timings)
        over = [t.label for t in timings if t.median > AIM]
        print(f"over {AIM * 1000:.0f} ms: {', '.join(over) or 'none'}")
    assert len(timings) >= 30
    slow = {t.label: round(t.median, 3) for t in timings if t.median > BOUND}
    assert not slow, f"over {BOUND} s: {slow}"
    empty = [t.label for t in timings if t.rows == 0]
    assert not empty, f"no rows: {empty}"


def test_maintain_drops_the_expired_day_quickly_and_keeps_everything_else(fleet, capsys):
    conninfo, settings, built = fleet
    dropped = storage_data.drop_expired_day(conninfo, settings, built)
    with capsys.disabled():
        print(
            f"\nmaintain dropping the oldest day ({dropped.dropped_readings:,} readings):"
            f" {dropped.seconds:.3f} s; {dropped.report.lines()}"
        )
    assert [line for line in dropped.report.lines() if line.startswith("dropped ")] == [
        line for line in dropped.report.lines() if line.startswith("dropped heartbeats_p")
    ]
    assert len(dropped.report.done) == 1, dropped.report.lines()
    assert dropped.dropped_readings > 0
    assert dropped.readings_after == dropped.readings_before - dropped.dropped_readings
    assert dropped.rollups_after == dropped.rollups_before, "rollups are kept longer"
    assert dropped.seconds < 5
