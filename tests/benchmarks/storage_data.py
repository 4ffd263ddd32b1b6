"""A fleet's worth of stored readings, built in SQL, and what it costs to read and expire it.

``build`` fills a migrated database with N readings for 10,000 customers over 10 days
ending now, entirely inside PostgreSQL (generate_series), as the pipeline would have
left them: one partition per UTC day, the per-minute and per-hour rollups (with the
pipeline's own aggregation), customer_last_seen, and ``heartbeat maintain`` run. Each day
is filled as a table of its own and then attached, so its indexes are built once, in
bulk. Readings are evenly spaced per customer, written in time order (as they arrive),
with heart rates from a fixed hash (about 3% low and 6% high anomalies); the last 1% of
customers stopped 20 minutes before the end (stale customers).

``panel_queries`` expands every SQL panel of the dashboards as Grafana does, over the
last hour (readings) and longer ranges (rollups); ``stats_queries`` are those of
`heartbeat stats`; ``time_queries`` runs each a few times and keeps the best and worst.
``drop_expired_day`` times ``heartbeat maintain`` dropping the oldest day.

Used by tests/integration/test_storage_scale.py (10 million readings) and by
``make bench-storage`` (100 million).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from heartbeat import partition_sql, reading_rows, stats
from heartbeat.maintain import Maintainer, Report
from heartbeat.settings import Settings
from heartbeat.store import Store
from tests.monitoring.queries import dashboards, expand_sql, panel_queries, sql_value, variables

CUSTOMERS = 10_000
DAYS = 10
STALE_SHARE = 0.01  # of the customers, silent for the last 20 minutes
DAY = timedelta(days=1)

# One day of readings into a table of its own, then attached: the indexes are built once
# on the filled table, not row by row. %(...)s are bound per day.
DAY_TABLE = """
CREATE TABLE {name} (LIKE heartbeats INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE {name} ADD CONSTRAINT {name}_bounds CHECK (ts >= {lower} AND ts < {upper});
"""
# Reading i of customer c is at start + i * step + c * (step / customers): every
# customer evenly spaced, customers interleaved, time order across the fleet.
FILL_DAY = """
INSERT INTO {name} (customer_id, ts, heart_rate, anomaly, ingested_at)
SELECT c, t, hr, CASE WHEN hr < 45 THEN 'low' WHEN hr > 180 THEN 'high' END, t
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i
CROSS JOIN LATERAL generate_series(1, %(customers)s) AS c
CROSS JOIN LATERAL (
    SELECT %(start)s::timestamptz + (i * %(customers)s + c) * %(gap)s::interval AS t
) AS at
CROSS JOIN LATERAL (
    SELECT (40 + abs(hashint8(i * 1000003 + c)) %% 150)::smallint AS hr
) AS rate
WHERE t >= %(lower)s AND t < %(upper)s
  AND (c <= %(live)s OR t < %(end)s::timestamptz - interval '20 minutes')
"""
ATTACH = """
ALTER TABLE heartbeats ATTACH PARTITION {name} FOR VALUES FROM ({lower}) TO ({upper});
ALTER TABLE {name} DROP CONSTRAINT {name}_bounds;
"""
# The same for the rollups of that day, with the pipeline's own aggregation.
MINUTE_TABLE = """
CREATE TABLE {name} (LIKE heartbeat_minutes INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE {name} ADD CONSTRAINT {name}_bounds
    CHECK (minute >= {lower} AND minute < {upper});
"""
FILL_MINUTES = (
    f"INSERT INTO {{name}} ({partition_sql.ROLLUP_COLUMNS})"
    f"{partition_sql.AGGREGATE_MINUTES} GROUP BY 1, 2 ORDER BY 2, 1"
)
ATTACH_MINUTES = """
ALTER TABLE heartbeat_minutes ATTACH PARTITION {name} FOR VALUES FROM ({lower}) TO ({upper});
ALTER TABLE {name} DROP CONSTRAINT {name}_bounds;
"""
# The per-hour rollups of a day, from its per-minute ones, into the week's partition
# (made empty beforehand), with the pipeline's own aggregation.
HOURS_TABLE = """
CREATE TABLE IF NOT EXISTS {name} PARTITION OF heartbeat_hours
    FOR VALUES FROM ({lower}) TO ({upper})
"""
FILL_HOURS = (
    f"INSERT INTO heartbeat_hours ({partition_sql.ROLLUP_COLUMNS.replace('minute', 'hour')})"
    f"{partition_sql.AGGREGATE_HOURS} GROUP BY 1, 2 ORDER BY 2, 1"
)
FLEET = """
INSERT INTO heartbeat_fleet_minutes (
    minute, readings, customers, low_anomalies, high_anomalies, newest_ts
)
SELECT minute, sum(readings), count(*), sum(low_anomalies), sum(high_anomalies), max(newest_ts)
FROM heartbeat_minutes
GROUP BY minute
"""
LAST_SEEN = """
INSERT INTO customer_last_seen (customer_id, newest_ts)
SELECT customer_id, max(ts) FROM heartbeats GROUP BY customer_id
ON CONFLICT (customer_id) DO UPDATE SET newest_ts = EXCLUDED.newest_ts
"""


@dataclass(frozen=True)
class Built:
    readings: int
    seconds: dict[str, float]  # step -> seconds
    end: datetime


def _day_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def build(
    conninfo: str,
    readings: int,
    *,
    settings: Settings,
    customers: int = CUSTOMERS,
    days: int = DAYS,
    end: datetime | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Built:
    """Fill the migrated, empty database at ``conninfo``; the readings stored and timings."""
    end = (end or datetime.now(UTC)).replace(microsecond=0)
    start = end - days * DAY
    per_customer = readings // customers
    gap = (end - start) / (per_customer * customers)
    live = customers - int(customers * STALE_SHARE)
    timings: dict[str, float] = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        started = time.perf_counter()
        current_hour = end.replace(minute=0, second=0)
        conn.execute("INSERT INTO heartbeat_hours_pending (hour) VALUES (%s)", (current_hour,))
        week = _day_start(start) - timedelta(days=_day_start(start).weekday())
        while week < end:
            conn.execute(
                HOURS_TABLE.format(
                    name=f"heartbeat_hours_p{week:%Y%m%d}",
                    lower=partition_sql.literal(week),
                    upper=partition_sql.literal(week + 7 * DAY),
                )
            )
            week += 7 * DAY
        lower = _day_start(start)
        while lower < end:
            upper = lower + DAY
            name = f"heartbeats_p{lower:%Y%m%d}"
            bounds = {"lower": partition_sql.literal(lower), "upper": partition_sql.literal(upper)}
            first = max(0, int((lower - start) / gap / customers) - 1)
            last = min(per_customer - 1, int((upper - start) / gap / customers) + 1)
            with conn.transaction():
                conn.execute(DAY_TABLE.format(name=name, **bounds))
                conn.execute(
                    FILL_DAY.format(name=name),
                    {
                        "first": first,
                        "last": last,
                        "customers": customers,
                        "start": start,
                        "gap": gap,
                        "lower": lower,
                        "upper": upper,
                        "live": live,
                        "end": end,
                    },
                )
            conn.execute(ATTACH.format(name=name, **bounds))
            timings["readings"] = timings.get("readings", 0.0) + time.perf_counter() - started

            started = time.perf_counter()
            minutes = f"heartbeat_minutes_p{lower:%Y%m%d}"
            with conn.transaction():
                conn.execute(MINUTE_TABLE.format(name=minutes, **bounds))
                conn.execute(FILL_MINUTES.format(name=minutes), {"lower": lower, "upper": upper})
            conn.execute(ATTACH_MINUTES.format(name=minutes, **bounds))
            timings["rollups"] = timings.get("rollups", 0.0) + time.perf_counter() - started

            started = time.perf_counter()
            # The current hour is not over: maintenance leaves it pending, read from minutes.
            conn.execute(FILL_HOURS, {"lower": lower, "upper": min(upper, current_hour)})
            timings["hourly rollups"] = (
                timings.get("hourly rollups", 0.0) + time.perf_counter() - started
            )
            progress(f"{name} and {minutes} filled and attached, its hours rolled up")
            lower = upper
            started = time.perf_counter()

        started = time.perf_counter()
        conn.execute(FLEET)
        timings["rollups"] += time.perf_counter() - started

        started = time.perf_counter()
        conn.execute(LAST_SEEN)
        timings["last seen"] = time.perf_counter() - started

        started = time.perf_counter()
        conn.execute(
            "VACUUM (ANALYZE) heartbeats, heartbeat_minutes, heartbeat_fleet_minutes,"
            " heartbeat_minutes_pending, heartbeat_hours, heartbeat_hours_pending,"
            " customer_last_seen"
        )
        timings["vacuum analyze"] = time.perf_counter() - started
        stored = conn.execute("SELECT count(*) FROM heartbeats").fetchone()
    # Partitions ahead, as the CronJob keeps them; no day of these is expired yet.
    keep = settings.model_copy(update={"raw_retention_days": days + 2})
    started = time.perf_counter()
    with Store(conninfo, max_size=2) as store:
        Maintainer(store, keep).run()
    timings["maintain"] = time.perf_counter() - started
    return Built(int(stored[0]) if stored else 0, timings, end)


# --- queries -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    label: str
    sql: str
    params: dict[str, Any] | None = None


def dashboard_queries(conninfo: str, spans: dict[str, timedelta]) -> list[Query]:
    """Every SQL panel and variable of the dashboards over each span, ending now."""
    found: list[Query] = []
    end = datetime.now(UTC)
    for span_label, span in spans.items():
        start = end - span
        for name, dashboard in dashboards().items():
            values: dict[str, str] = {}
            for variable in variables(dashboard):
                query = variable["query"]
                text = query if isinstance(query, str) else query["rawSql"]
                sql = expand_sql(text, start=start, end=end, values=values)
                found.append(Query(f"{span_label} / variable ${variable['name']}", sql))
                with psycopg.connect(conninfo) as conn:
                    options = [str(row[0]) for row in conn.execute(sql).fetchall()]
                values[variable["name"]] = sql_value(
                    options[:2] or ["1"], multi=variable.get("multi", False)
                )
            for panel in panel_queries(name, dashboard):
                if panel.datasource == "prometheus":
                    continue
                sql = expand_sql(panel.text, start=start, end=end, values=values)
                found.append(Query(f"{span_label} / {panel.panel}", sql))
    return found


def stats_queries(windows: dict[str, timedelta], limit: int = 50) -> list[Query]:
    found = []
    for label, window in windows.items():
        totals, per_customer = stats.queries(window)
        params = {"window": window.total_seconds(), "limit": limit}
        found += [
            Query(f"stats {label} / totals", totals, params),
            Query(f"stats {label} / per customer", per_customer, params),
        ]
    found.append(
        Query(
            "consumer / stale customers",
            reading_rows.COUNT_STALE,
            {"stale": 300.0, "lookback": 3600.0},
        )
    )
    return found


@dataclass(frozen=True)
class Timing:
    label: str
    best: float  # seconds
    median: float
    worst: float
    rows: int


def time_queries(
    conninfo: str, queries: list[Query], runs: int = 3, *, jit: bool = False
) -> list[Timing]:
    """Each query ``runs`` times on one connection (the first run warms the cache).

    Without ``jit``, as the pipeline's sessions and the README's dashboard role run.
    """
    timings = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT set_config('jit', %s, false)", ("on" if jit else "off",))
        for query in queries:
            seconds, rows = [], 0
            for _ in range(runs):
                started = time.perf_counter()
                rows = len(conn.execute(query.sql, query.params).fetchall())
                seconds.append(time.perf_counter() - started)
            timings.append(
                Timing(query.label, min(seconds), statistics.median(seconds), max(seconds), rows)
            )
    return timings


def print_timings(timings: list[Timing], out: Callable[[str], None] = print) -> None:
    width = max(len(t.label) for t in timings)
    out(f"{'query':{width}}  {'best':>8}  {'median':>8}  {'worst':>8}  rows")
    for t in timings:
        out(
            f"{t.label:{width}}  {t.best * 1000:6.1f}ms  {t.median * 1000:6.1f}ms"
            f"  {t.worst * 1000:6.1f}ms  {t.rows}"
        )


# --- expiry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dropped:
    seconds: float
    report: Report
    readings_before: int
    readings_after: int
    dropped_readings: int  # what the dropped partitions held
    rollups_before: int
    rollups_after: int


def drop_expired_day(conninfo: str, settings: Settings, built: Built) -> Dropped:
    """``heartbeat maintain`` with a retention that makes the oldest day expire."""
    retention = (built.end - _day_start(built.end - DAYS * DAY)).days - 1
    shorter = settings.model_copy(update={"raw_retention_days": retention})
    with psycopg.connect(conninfo, autocommit=True) as conn:

        def one(statement: str) -> int:
            row = conn.execute(statement).fetchone()
            return int(row[0]) if row else 0

        before = one("SELECT count(*) FROM heartbeats")
        rollups_before = one("SELECT count(*) FROM heartbeat_minutes")
        oldest = f"heartbeats_p{_day_start(built.end - DAYS * DAY):%Y%m%d}"
        dropped = one(f"SELECT count(*) FROM {oldest}")
        with Store(conninfo, max_size=2) as store:
            started = time.perf_counter()
            report = Maintainer(store, shorter).run()
            seconds = time.perf_counter() - started
        after = one("SELECT count(*) FROM heartbeats")
        rollups_after = one("SELECT count(*) FROM heartbeat_minutes")
    return Dropped(seconds, report, before, after, dropped, rollups_before, rollups_after)
