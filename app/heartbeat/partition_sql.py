"""The SQL of maintenance: what it reads, and the statements of each step. Plain text.

Names come from ``heartbeat.maintenance`` (plain lower-case identifiers, checked
there) and bounds are timestamps written by this module, so DDL, which takes no bind
parameters, is built without quoting anything a user typed.

Creating a partition holds back no writer: the table is made on its own, given a
CHECK of its bounds (so attaching needs no scan of it), filled with the default
partition's rows of its span if there are any, then attached, which takes only a
SHARE UPDATE EXCLUSIVE lock on the parent. Dropping one takes an ACCESS EXCLUSIVE lock
on the parent for an instant; every step runs under MAINTENANCE_LOCK_TIMEOUT_SECONDS
so a step waiting behind a long query gives up instead of queueing the consumers
behind it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from heartbeat.maintenance import Create, Drop, Managed, Purge
from heartbeat.reading_rows import MINUTE_ORIGIN

Statement = tuple[str, dict[str, Any] | None]
# In ``create``'s statements when there is a default partition: the move of its rows.
MOVED_INDEX = 3

KIND = "SELECT c.relkind::text AS kind FROM pg_class AS c WHERE c.oid = to_regclass(%(table)s)"
# Bounds are read back in the session's own time zone and DateStyle, which the cast
# understands, so the round trip does not depend on either.
PARTITIONS = r"""
SELECT c.relname AS name,
       pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' AS is_default,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz
           AS lower,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
           AS upper
FROM pg_inherits AS i
JOIN pg_class AS c ON c.oid = i.inhrelid
WHERE i.inhparent = to_regclass(%(table)s)
ORDER BY 3 NULLS FIRST
"""
PENDING_MINUTES = "SELECT DISTINCT minute FROM heartbeat_minutes_pending ORDER BY minute"
PENDING_HOURS = "SELECT DISTINCT hour FROM heartbeat_hours_pending ORDER BY hour"
DISCARD_PENDING = "DELETE FROM heartbeat_minutes_pending WHERE minute < %(before)s"
FORGET_CUSTOMERS = "DELETE FROM customer_last_seen WHERE newest_ts < %(before)s"
# Readers join the pending minutes and hours: keep the planner's idea of their number
# current (a stale one, after many were taken, turns a small join into a large plan).
ANALYZE_PENDING = "ANALYZE heartbeat_minutes_pending, heartbeat_hours_pending"
# Each pending minute of [lower, upper) is taken and recomputed from the readings, in
# one statement: one snapshot, so every batch whose pending row is taken is counted
# whole. A batch committing meanwhile leaves its row for the next run. Replacing the
# figures, never adding to them, makes a second recomputation harmless. Rows go in
# minute order, which keeps the BRIN index on minute selective.
FIGURES = (
    "readings",
    "min_heart_rate",
    "max_heart_rate",
    "sum_heart_rate",
    "sum_squares",
    "low_anomalies",
    "high_anomalies",
    "newest_ts",
)
ROLLUP_COLUMNS = ", ".join(("customer_id", "minute", *FIGURES))
# A rollup row recomputed is replaced, figure by figure, never added to.
REPLACE_FIGURES = ",\n    ".join(f"{figure} = EXCLUDED.{figure}" for figure in FIGURES)
# Each customer's figures per minute, from the readings of [lower, upper).
AGGREGATE_MINUTES = f"""
SELECT h.customer_id,
       date_bin('1 minute', h.ts, {MINUTE_ORIGIN}),
       count(*),
       min(h.heart_rate),
       max(h.heart_rate),
       sum(h.heart_rate),
       sum(h.heart_rate::integer * h.heart_rate),
       count(*) FILTER (WHERE h.anomaly = 'low'),
       count(*) FILTER (WHERE h.anomaly = 'high'),
       max(h.ts)
FROM heartbeats AS h
WHERE h.ts >= %(lower)s AND h.ts < %(upper)s
"""
# Each pending minute of [lower, upper) is taken and recomputed from the readings, per
# customer and for the whole fleet, in one statement: one snapshot, so every batch whose
# pending row is taken is counted whole, and the two tables agree. A batch committing
# meanwhile leaves its row for the next run. Replacing the figures, never adding to
# them, makes a second recomputation harmless. Rows go in minute order, which keeps the
# BRIN index on minute selective. The hours the minutes fall in are marked for the hourly
# rollups (``HOURLY_ROLLUP``, the next step). The statement's count is the per-customer
# rows.
ROLLUP = f"""
WITH taken AS (
    DELETE FROM heartbeat_minutes_pending
    WHERE minute >= %(lower)s AND minute < %(upper)s
    RETURNING minute
), hours AS (
    INSERT INTO heartbeat_hours_pending (hour)
    SELECT DISTINCT date_bin('1 hour', minute, {MINUTE_ORIGIN}) FROM taken
), per_customer ({ROLLUP_COLUMNS}) AS (
    {AGGREGATE_MINUTES}
      AND date_bin('1 minute', h.ts, {MINUTE_ORIGIN}) IN (SELECT minute FROM taken)
    GROUP BY 1, 2
), fleet AS (
    INSERT INTO heartbeat_fleet_minutes AS f (
        minute, readings, customers, low_anomalies, high_anomalies, newest_ts
    )
    SELECT minute, sum(readings), count(*), sum(low_anomalies), sum(high_anomalies),
           max(newest_ts)
    FROM per_customer
    GROUP BY minute
    ON CONFLICT (minute) DO UPDATE SET
        readings = EXCLUDED.readings,
        customers = EXCLUDED.customers,
        low_anomalies = EXCLUDED.low_anomalies,
        high_anomalies = EXCLUDED.high_anomalies,
        newest_ts = EXCLUDED.newest_ts
)
INSERT INTO heartbeat_minutes AS m ({ROLLUP_COLUMNS})
SELECT {ROLLUP_COLUMNS} FROM per_customer
ORDER BY minute, customer_id
ON CONFLICT (customer_id, minute) DO UPDATE SET
    {REPLACE_FIGURES}
"""
# Each customer's figures per hour, from the per-minute rollups of [lower, upper).
AGGREGATE_HOURS = f"""
SELECT m.customer_id,
       date_bin('1 hour', m.minute, {MINUTE_ORIGIN}),
       sum(m.readings),
       min(m.min_heart_rate),
       max(m.max_heart_rate),
       sum(m.sum_heart_rate),
       sum(m.sum_squares),
       sum(m.low_anomalies),
       sum(m.high_anomalies),
       max(m.newest_ts)
FROM heartbeat_minutes AS m
WHERE m.minute >= %(lower)s AND m.minute < %(upper)s
"""
# Each pending hour of [lower, upper) (hours that are over) is taken and recomputed from
# its minutes, replacing the figures. Only maintenance writes the pending hours, under its
# advisory lock, after the minutes' rollups committed; a minute a batch stores meanwhile is
# pending itself, so readers compute its hour from the minutes until the next run
# recomputes it.
HOURLY_ROLLUP = f"""
WITH taken AS (
    DELETE FROM heartbeat_hours_pending
    WHERE hour >= %(lower)s AND hour < %(upper)s
    RETURNING hour
)
INSERT INTO heartbeat_hours AS h ({ROLLUP_COLUMNS.replace("minute", "hour")})
{AGGREGATE_HOURS}
  AND date_bin('1 hour', m.minute, {MINUTE_ORIGIN}) IN (SELECT hour FROM taken)
GROUP BY 1, 2
ORDER BY 2, 1
ON CONFLICT (customer_id, hour) DO UPDATE SET
    {REPLACE_FIGURES}
"""
FORGET_FLEET_MINUTES = "DELETE FROM heartbeat_fleet_minutes WHERE minute < %(before)s"


def literal(moment: datetime) -> str:
    """A timestamptz literal, in UTC."""
    return "'" + moment.astimezone(UTC).isoformat() + "'"


def strays(managed: Managed, default: str) -> str:
    """The hours the default partition holds rows in."""
    return (
        f"SELECT DISTINCT date_bin('1 hour', {managed.column}, {MINUTE_ORIGIN}) AS hour"
        f" FROM {_checked(default)}"
    )


def create(step: Create, default: str | None) -> list[Statement]:
    """Make, fill from ``default`` and attach one partition (rows moved: ``MOVED_INDEX``).

    The default partition is locked first: a reading arriving in it for this span
    between the move and the attach would make the attach fail.
    """
    table, column, name = step.table.table, step.table.column, _checked(step.name)
    lower, upper = literal(step.lower), literal(step.upper)
    statements: list[Statement] = []
    if default:
        statements.append((f"LOCK TABLE {_checked(default)} IN ACCESS EXCLUSIVE MODE", None))
    statements += [
        (
            f"CREATE TABLE {name} (LIKE {table}"
            " INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)",
            None,
        ),
        (
            f"ALTER TABLE {name} ADD CONSTRAINT {name}_bounds"
            f" CHECK ({column} >= {lower} AND {column} < {upper})",
            None,
        ),
    ]
    if default:
        statements.append(
            (
                f"WITH moved AS (DELETE FROM {_checked(default)}"
                f" WHERE {column} >= {lower} AND {column} < {upper} RETURNING *)"
                f" INSERT INTO {name} SELECT * FROM moved",
                None,
            )
        )
    attach = f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ({lower}) TO ({upper})"
    statements += [(attach, None), (f"ALTER TABLE {name} DROP CONSTRAINT {name}_bounds", None)]
    return statements


def drop(step: Drop) -> list[Statement]:
    return [(f"DROP TABLE {_checked(step.name)}", None)]


def discard_pending(before: datetime) -> list[Statement]:
    """Forget pending minutes whose readings are gone: their rollups stay as they are."""
    return [(DISCARD_PENDING, {"before": before})]


def purge(step: Purge) -> list[Statement]:
    return [
        (
            f"DELETE FROM {_checked(step.default)}"
            f" WHERE {step.table.column} < {literal(step.before)}",
            None,
        )
    ]


def rollup(lower: datetime, upper: datetime) -> list[Statement]:
    return [(ROLLUP, {"lower": lower, "upper": upper})]


def hourly_rollup(lower: datetime, upper: datetime) -> list[Statement]:
    return [(HOURLY_ROLLUP, {"lower": lower, "upper": upper})]


def _checked(name: str) -> str:
    if not name.replace("_", "").isalnum() or not name.islower() or not name[0].isalpha():
        raise ValueError(f"not a plain lower-case SQL name: {name!r}")
    return name
