"""Per-hour rollups against the real PostgreSQL: built once by `heartbeat maintain` from
the per-minute ones, exact whatever is still pending, expired on their own retention, and
read by `heartbeat stats` and the statistics panels over long ranges with the same figures
as the readings themselves.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from heartbeat import stats
from heartbeat.cli import main
from heartbeat.maintain import Maintainer
from heartbeat.migrations import Migrator
from heartbeat.settings import load_settings
from heartbeat.store import Store
from heartbeat.validation import Reading, classify
from tests.integration.pipeline import database_migrated_through
from tests.monitoring.queries import dashboards, expand_sql, panel_queries

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("logging_as_it_was")]

GROUP = "group-h"
ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"
PER_HOUR = f"""
SELECT customer_id, date_bin('1 hour', ts, {ORIGIN}), count(*)::integer, min(heart_rate),
       max(heart_rate), sum(heart_rate)::bigint, sum(heart_rate::integer * heart_rate)::bigint,
       (count(*) FILTER (WHERE anomaly = 'low'))::integer,
       (count(*) FILTER (WHERE anomaly = 'high'))::integer, max(ts)
FROM heartbeats GROUP BY 1, 2
"""
HOURS = """
SELECT customer_id, hour, readings, min_heart_rate, max_heart_rate, sum_heart_rate,
       sum_squares, low_anomalies, high_anomalies, newest_ts
FROM heartbeat_hours
"""
HOURS_LIVE = HOURS.replace("heartbeat_hours", "heartbeat_hours_live")
# Each customer's figures from the readings whose minute passes ``minutes`` (a condition
# on the column minute), as `heartbeat stats` and the panels show them.
RAW_PER_CUSTOMER = f"""
SELECT customer_id, count(*), round(avg(heart_rate), 1)::float8, min(heart_rate),
       max(heart_rate), round(coalesce(stddev_samp(heart_rate), 0), 1)::float8,
       count(*) FILTER (WHERE anomaly IS NOT NULL), max(ts)
FROM (SELECT *, date_bin('1 minute', ts, {ORIGIN}) AS minute FROM heartbeats) AS h
WHERE {{minutes}}
GROUP BY customer_id
ORDER BY customer_id
"""


def sql(conninfo: str, statement: str, params: object = None) -> list[tuple]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        cursor = conn.execute(statement, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def maintain(monkeypatch, conninfo: str, capsys, **settings: object) -> list[str]:
    monkeypatch.setenv("DATABASE_URL", conninfo)
    for name, value in settings.items():
        monkeypatch.setenv(name, str(value))
    assert main(["maintain"]) == 0
    return capsys.readouterr().out.splitlines()


def maintain_at(conninfo: str, now: datetime) -> list[str]:
    """What `heartbeat maintain` prints, run as the command runs it with its clock at ``now``."""
    with Store(conninfo, max_size=2, connect_timeout=2) as store:  # one holds the lock
        return Maintainer(store, load_settings(), clock=lambda: now).run().lines()


def readings(customers: range, start: datetime, end: datetime, step: int) -> list[Reading]:
    """Readings of ``customers`` every ``step`` seconds, heart rates spread over every band."""
    found = []
    moment, n = start, 0
    while moment < end:
        for customer in customers:
            rate = 35 + (n * 7 + customer * 13) % 180
            found.append(Reading(customer, moment, rate, classify(rate)))
        moment += timedelta(seconds=step)
        n += 1
    return found


@pytest.fixture(autouse=True)
def _no_dotenv(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def store(database):
    with Store(database, max_size=2, connect_timeout=2) as store:
        yield store


def test_hours_are_rolled_up_once_from_the_minutes_and_exact_while_pending(store, database):
    # Maintenance runs with its clock stopped at ``now``: which hour is the current one
    # (pending until it is over) does not change if the wall clock passes :00 meanwhile.
    now = datetime.now(UTC).replace(microsecond=0)
    current = now.replace(minute=0, second=0)
    batch = readings(range(1, 4), now - timedelta(hours=3, minutes=10), now, 45)
    store.write_batch(GROUP, batch, {})
    store.write_batch(GROUP, batch[:50], {})  # redelivered: duplicates
    expected = set(sql(database, PER_HOUR))
    assert len(expected) >= 12  # three customers, four hours or five
    assert sql(database, "SELECT count(*) FROM heartbeat_hours") == [(0,)]
    assert set(sql(database, HOURS_LIVE)) == expected, "pending hours come from the minutes"

    lines = maintain_at(database, now)
    ended = {row for row in expected if row[1] < current}
    assert f"rolled up {len({row[1] for row in ended})} pending hours" in " ".join(lines)
    # The current hour stays pending until it is over: written once, not once a minute.
    assert set(sql(database, "SELECT hour FROM heartbeat_hours_pending")) <= {(current,)}
    assert set(sql(database, HOURS)) == ended
    assert set(sql(database, HOURS_LIVE)) == expected

    # A late reading into an hour already rolled up: exact at once, rolled up next run.
    late = Reading(2, now - timedelta(hours=2, seconds=13), 200, classify(200))
    store.write_batch(GROUP, [late], {})
    expected = set(sql(database, PER_HOUR))
    assert set(sql(database, HOURS_LIVE)) == expected
    assert set(sql(database, HOURS)) != {row for row in expected if row[1] < current}

    # Several runs at once: one does the work, the others find it done or the lock taken.
    runs: list[list[str]] = []
    threads = [
        threading.Thread(target=lambda: runs.append(maintain_at(database, now))) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(runs) == 3
    assert sum(line.startswith("rolled up 1 pending hours") for r in runs for line in r) == 1, runs
    assert set(sql(database, HOURS)) == {row for row in expected if row[1] < current}
    assert maintain_at(database, now) == ["nothing to do"]


def test_stats_over_a_long_window_equal_the_readings_of_its_minutes(
    store, database, monkeypatch, capsys
):
    now = datetime.now(UTC).replace(microsecond=0)
    store.write_batch(GROUP, readings(range(1, 6), now - timedelta(hours=30), now, 50), {})
    maintain(monkeypatch, database, capsys)
    # A tail not rolled up yet, and a late reading into a rolled-up hour.
    store.write_batch(GROUP, readings(range(3, 8), now - timedelta(minutes=20), now, 7), {})
    late = Reading(1, now - timedelta(hours=5, seconds=3), 41, classify(41))
    store.write_batch(GROUP, [late], {})

    for window in (timedelta(hours=2), timedelta(hours=6, minutes=17), timedelta(hours=26)):
        assert stats.queries(window)[1] == stats.ROLLED_UP_PER_CUSTOMER
        params = {"window": window.total_seconds(), "limit": 100}
        raw = RAW_PER_CUSTOMER.format(
            minutes=f"minute >= date_bin('1 minute', now() - %(window)s * interval '1 second',"
            f" {ORIGIN})"
        )
        with psycopg.connect(database) as conn:  # one transaction: one now() for both
            rolled = conn.execute(stats.ROLLED_UP_PER_CUSTOMER, params).fetchall()
            expected = conn.execute(raw, params).fetchall()
        assert len(expected) == 7
        assert rolled == expected, window


@pytest.mark.parametrize(
    ("ago", "length"),
    [
        (timedelta(minutes=1, seconds=7), timedelta(hours=26, minutes=3, seconds=11)),
        (timedelta(hours=3, minutes=31), timedelta(hours=4, minutes=59)),
        (timedelta(0), timedelta(hours=1, minutes=30)),
    ],
)
def test_the_statistics_panels_over_a_long_range_equal_the_readings_of_its_minutes(
    store, database, monkeypatch, capsys, ago, length
):
    now = datetime.now(UTC).replace(microsecond=0)
    store.write_batch(GROUP, readings(range(1, 6), now - timedelta(hours=30), now, 50), {})
    maintain(monkeypatch, database, capsys)
    store.write_batch(GROUP, readings(range(3, 8), now - timedelta(minutes=20), now, 7), {})
    end = now - ago
    start = end - length
    board = dashboards()["heartbeat-heart-rates.json"]
    panels = {query.panel: query for query in panel_queries("heartbeat-heart-rates.json", board)}
    values = {"customer": "'2','4'"}
    between = f"minute BETWEEN '{start.isoformat()}' AND '{end.isoformat()}'"
    expected = sql(database, RAW_PER_CUSTOMER.format(minutes=between))
    assert len(expected) >= 5

    table = expand_sql(panels["Per-customer statistics"].text, start=start, end=end, values=values)
    rows = [
        (*row[:2], float(row[2]), *row[3:5], float(row[5]), *row[6:])
        for row in sql(database, table)
    ]
    assert rows == expected

    selected = expand_sql(
        panels["Statistics of $customer"].text, start=start, end=end, values=values
    )
    raw_selected = (
        "SELECT round(avg(heart_rate), 1), min(heart_rate), max(heart_rate),"
        " round(coalesce(stddev_samp(heart_rate), 0), 1)"
        f" FROM (SELECT *, date_bin('1 minute', ts, {ORIGIN}) AS minute FROM heartbeats) AS h"
        f" WHERE customer_id IN (2, 4) AND {between}"
    )
    assert sql(database, selected) == sql(database, raw_selected)


def test_hourly_rollups_expire_on_their_own_retention(store, database, monkeypatch, capsys):
    old = (datetime.now(UTC) - timedelta(days=200)).replace(minute=0, second=0, microsecond=0)
    sql(
        database,
        "INSERT INTO heartbeat_hours VALUES (9, %s, 1, 70, 70, 70, 4900, 0, 0, %s)",
        (old, old),
    )
    sql(database, "INSERT INTO customer_last_seen (customer_id, newest_ts) VALUES (9, %s)", (old,))
    lines = maintain(monkeypatch, database, capsys, HOURLY_ROLLUP_RETENTION_DAYS=365)
    week = old - timedelta(days=old.weekday(), hours=old.hour)
    name = f"heartbeat_hours_p{week:%Y%m%d}"
    assert any(line.startswith(f"created {name}") and "moved 1 rows" in line for line in lines)
    assert sql(database, "SELECT count(*) FROM customer_last_seen") == [(1,)]

    lines = maintain(monkeypatch, database, capsys, HOURLY_ROLLUP_RETENTION_DAYS=100)
    assert any(line.startswith(f"dropped {name}") for line in lines), lines
    assert sql(database, "SELECT count(*) FROM heartbeat_hours") == [(0,)]
    assert any(line.startswith("forgot 1 customers") for line in lines), lines


# --- the migration that adds the hourly rollups ---------------------------------------------

MINUTE_ROW = """
INSERT INTO heartbeat_minutes VALUES (%(customer)s, %(minute)s, 2, 60, 80, 140, 10000, 0, 0,
                                      %(minute)s)
"""


@pytest.fixture
def database_before_hours(postgres_service, tmp_path):
    """A database with the migrations before the hourly rollups only."""
    with database_migrated_through(postgres_service.conninfo, tmp_path, 7, "hb_hours") as conninfo:
        yield conninfo


def test_the_migration_marks_the_hours_that_may_still_change_so_they_end_exact(
    database_before_hours,
):
    conninfo = database_before_hours
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    sql(conninfo, MINUTE_ROW, {"customer": 1, "minute": hour})
    sql(conninfo, MINUTE_ROW, {"customer": 1, "minute": hour - timedelta(hours=3)})
    pending_minute = hour - timedelta(hours=5, minutes=-7)
    sql(conninfo, "INSERT INTO heartbeat_minutes_pending VALUES (%s)", (pending_minute,))
    with Migrator(conninfo) as migrator:
        migrator.apply()

    pending = {h for (h,) in sql(conninfo, "SELECT hour FROM heartbeat_hours_pending")}
    assert {hour, hour - timedelta(hours=5)} <= pending
    assert hour - timedelta(hours=3) not in pending  # over, and nothing of it pending

    # The previous release's `heartbeat maintain` rolls a further reading of this hour up
    # into its minute, and knows nothing of the hours.
    sql(
        conninfo,
        "UPDATE heartbeat_minutes SET readings = 3, sum_heart_rate = 210, sum_squares = 14900"
        " WHERE minute = %s",
        (hour,),
    )
    with Store(conninfo, max_size=2, connect_timeout=2) as store:
        later = hour + timedelta(hours=1, minutes=1)
        Maintainer(store, load_settings(), clock=lambda: later).run()
    rows = sql(conninfo, "SELECT hour, readings, sum_heart_rate FROM heartbeat_hours ORDER BY 1")
    assert rows == [(hour - timedelta(hours=3), 2, 140), (hour, 3, 210)]
