"""`heartbeat stats`: what is stored, at a glance, over a window ending now.

Windows up to ``ROLLUPS_ABOVE`` read the readings. Longer ones read the rollups, counted
in whole minutes from the one holding the window's start: the totals from the fleet's
minutes, each customer's figures from its per-minute rollups up to the first whole hour
and its per-hour rollups from there on (``heartbeat_minutes_live`` and
``heartbeat_hours_live``, exact for what is still pending too). So the figures are those
of the window's minutes, and a customer costs at most 59 minutes plus an hour a row.
Both answer in time proportional to the window, not to everything stored.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tabulate import tabulate

from heartbeat.reading_rows import MINUTE_ORIGIN
from heartbeat.store import Store

ROLLUPS_ABOVE = timedelta(hours=1)
SINCE = "now() - make_interval(secs => %(window)s)"
ROLLED_UP_SINCE = f"date_bin('1 minute', {SINCE}, {MINUTE_ORIGIN})"
# The first hour wholly in the window: its start, or the next hour.
FIRST_HOUR = (
    f"(date_bin('1 hour', {ROLLED_UP_SINCE} - interval '1 microsecond', {MINUTE_ORIGIN})"
    " + interval '1 hour')"
)
ROLLUP_FIGURES = (
    "readings, min_heart_rate, max_heart_rate, sum_heart_rate, sum_squares,"
    " low_anomalies, high_anomalies, newest_ts"
)

TOTALS = f"""
SELECT count(*) AS readings,
       count(*) FILTER (WHERE anomaly = 'low') AS low_anomalies,
       count(*) FILTER (WHERE anomaly = 'high') AS high_anomalies,
       count(DISTINCT customer_id) AS customers,
       max(ts) AS newest,
       extract(epoch FROM now() - max(ts))::float8 AS newest_age_seconds
FROM heartbeats
WHERE ts >= {SINCE}
"""
PER_CUSTOMER = f"""
SELECT customer_id,
       count(*) AS readings,
       round(avg(heart_rate)::numeric, 1)::float8 AS avg,
       min(heart_rate) AS min,
       max(heart_rate) AS max,
       round(coalesce(stddev_samp(heart_rate), 0)::numeric, 1)::float8 AS stddev,
       count(*) FILTER (WHERE anomaly IS NOT NULL) AS anomalies,
       max(ts) AS newest
FROM heartbeats
WHERE ts >= {SINCE}
GROUP BY customer_id
ORDER BY customer_id
LIMIT %(limit)s
"""
# The fleet's figures per minute, and the customers seen since the window's start
# (one row each; a customer's time there may be up to 10 s behind its newest reading).
ROLLED_UP_TOTALS = f"""
SELECT coalesce(sum(f.readings), 0)::bigint AS readings,
       coalesce(sum(f.low_anomalies), 0)::bigint AS low_anomalies,
       coalesce(sum(f.high_anomalies), 0)::bigint AS high_anomalies,
       (SELECT count(*) FROM customer_last_seen WHERE newest_ts >= {ROLLED_UP_SINCE})
           AS customers,
       max(f.newest_ts) AS newest,
       extract(epoch FROM now() - max(f.newest_ts))::float8 AS newest_age_seconds
FROM heartbeat_fleet_minutes_live AS f
WHERE f.minute >= {ROLLED_UP_SINCE}
"""
# Customer by customer in id order, each one's minutes before the first whole hour and
# hours from it through the keys, until ``limit`` customers with readings are found (any
# seen in the window is in customer_last_seen at most 10 s before its newest reading).
# The sample standard deviation from the sums: sqrt((sum x^2 - (sum x)^2 / n) / (n - 1)).
ROLLED_UP_PER_CUSTOMER = f"""
SELECT s.customer_id, r.readings, r.avg, r.min, r.max, r.stddev, r.anomalies, r.newest
FROM customer_last_seen AS s
CROSS JOIN LATERAL (
    SELECT sum(readings)::bigint AS readings,
           round(sum(sum_heart_rate)::numeric / sum(readings), 1)::float8 AS avg,
           min(min_heart_rate) AS min,
           max(max_heart_rate) AS max,
           round(coalesce(sqrt(greatest(
               sum(sum_squares) - sum(sum_heart_rate) ^ 2 / sum(readings), 0
           ) / nullif(sum(readings) - 1, 0)), 0), 1)::float8 AS stddev,
           sum(low_anomalies + high_anomalies)::bigint AS anomalies,
           max(newest_ts) AS newest
    FROM (
        SELECT {ROLLUP_FIGURES} FROM heartbeat_minutes_live
        WHERE customer_id = s.customer_id
          AND minute >= {ROLLED_UP_SINCE} AND minute < {FIRST_HOUR}
        UNION ALL
        SELECT {ROLLUP_FIGURES} FROM heartbeat_hours_live
        WHERE customer_id = s.customer_id AND hour >= {FIRST_HOUR}
    ) AS parts
) AS r
WHERE s.newest_ts >= {ROLLED_UP_SINCE} - interval '10 seconds' AND r.readings > 0
ORDER BY s.customer_id
LIMIT %(limit)s
"""


def queries(window: timedelta) -> tuple[str, str]:
    """The totals and per-customer statements for ``window``."""
    if window > ROLLUPS_ABOVE:
        return ROLLED_UP_TOTALS, ROLLED_UP_PER_CUSTOMER
    return TOTALS, PER_CUSTOMER


def collect(store: Store, *, window: timedelta, limit: int) -> dict[str, Any]:
    totals_sql, per_customer_sql = queries(window)
    params = {"window": window.total_seconds(), "limit": limit}
    totals = store.query(totals_sql, params)[0]
    customers = store.query(per_customer_sql, params)
    return {
        "window_seconds": window.total_seconds(),
        "source": "rollups" if window > ROLLUPS_ABOVE else "readings",
        "totals": totals,
        "customers": customers,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, default=_plain, indent=2)


def render_table(report: dict[str, Any]) -> str:
    totals = report["totals"]
    age = totals["newest_age_seconds"]
    lines = [
        f"readings: {totals['readings']}  customers: {totals['customers']}  "
        f"anomalies: {totals['low_anomalies']} low, {totals['high_anomalies']} high"
        f"  (last {report['window_seconds']:g}s, from the {report['source']})",
        "newest reading: "
        + (
            "none"
            if totals["newest"] is None
            else f"{totals['newest'].isoformat()} ({age:.1f}s ago)"
        ),
        "",
        f"per customer, last {report['window_seconds']:g}s:",
    ]
    rows = [
        [
            c["customer_id"],
            c["readings"],
            c["avg"],
            c["min"],
            c["max"],
            c["stddev"],
            c["anomalies"],
            c["newest"].isoformat(timespec="seconds"),
        ]
        for c in report["customers"]
    ]
    headers = ["customer", "readings", "avg", "min", "max", "stddev", "anomalies", "newest"]
    lines.append(tabulate(rows, headers=headers) if rows else "(no readings in the window)")
    return "\n".join(lines)
