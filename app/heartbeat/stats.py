"""`heartbeat stats`: what is stored, at a glance."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tabulate import tabulate

from heartbeat.store import Store

TOTALS = """
SELECT count(*) AS readings,
       count(*) FILTER (WHERE anomaly = 'low') AS low_anomalies,
       count(*) FILTER (WHERE anomaly = 'high') AS high_anomalies,
       count(DISTINCT customer_id) AS customers,
       max(ts) AS newest,
       extract(epoch FROM now() - max(ts))::float8 AS newest_age_seconds
FROM heartbeats
"""
PER_CUSTOMER = """
SELECT customer_id,
       count(*) AS readings,
       round(avg(heart_rate)::numeric, 1)::float8 AS avg,
       min(heart_rate) AS min,
       max(heart_rate) AS max,
       round(coalesce(stddev_samp(heart_rate), 0)::numeric, 1)::float8 AS stddev,
       count(*) FILTER (WHERE anomaly IS NOT NULL) AS anomalies,
       max(ts) AS newest
FROM heartbeats
WHERE ts >= now() - make_interval(secs => %(window)s)
GROUP BY customer_id
ORDER BY customer_id
LIMIT %(limit)s
"""


def collect(store: Store, *, window: timedelta, limit: int) -> dict[str, Any]:
    totals = store.query(TOTALS)[0]
    customers = store.query(PER_CUSTOMER, {"window": window.total_seconds(), "limit": limit})
    return {"window_seconds": window.total_seconds(), "totals": totals, "customers": customers}


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
        f"anomalies: {totals['low_anomalies']} low, {totals['high_anomalies']} high",
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
