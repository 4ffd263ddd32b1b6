"""Heart rates from PostgreSQL: the readings themselves, per customer.

Tables and columns are those of ``sql/``: ``heartbeats`` (the readings, kept
RAW_RETENTION_DAYS), ``heartbeat_minutes_live`` (per-customer, per-minute rollups, exact
for the minutes still pending too), ``heartbeat_hours_live`` (the same per hour),
``heartbeat_fleet_minutes_live`` (the whole fleet, one row a minute) and
``customer_last_seen`` (one row per customer).
Panels over a range longer than ROLLUPS_ABOVE read the rollups, shorter ones the
readings: each query is the two, of which PostgreSQL runs only the one whose condition
on the range holds (a constant, so the other is never planned into a scan). Over the
rollups, the figures of a customer over the range (the statistics panels) come from its
hours wholly in the range and its minutes before and after them, so they are those of
the range's minutes at a cost of at most two hours of minutes plus a row an hour; the
heart-rate time series reads minutes, for its per-minute points.

Queries use Grafana's SQL macros (``$__timeFilter``, ``$__timeFrom()``,
``$__timeGroupAlias``) and the ``$customer`` variable; the monitoring tests expand them
as Grafana does and run every query against a real database that the pipeline filled,
over a short range and a long one.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, QueryVariable, Row
from grafana_foundation_sdk.models.dashboard import VariableRefresh, VariableSort

from heartbeat_dashboards.datasources import POSTGRES, SqlQuery
from heartbeat_dashboards.panels import Panel, stat, table, timeseries

UID = "heartbeat-heart-rates"
# A customer is stale when their newest reading is older than this (the original design).
STALE_AFTER = "5 minutes"
LOW_BPM, HIGH_BPM = 45, 180  # heartbeat.validation's anomaly bands
ROLLUPS_ABOVE = "1 hour"
LONG = f"$__timeTo()::timestamptz - $__timeFrom()::timestamptz > interval '{ROLLUPS_ABOVE}'"
SHORT = f"NOT ({LONG})"
# customer_last_seen may be up to 10 s behind a customer's newest reading.
SEEN_SINCE_START = "$__timeFrom()::timestamptz - interval '10 seconds'"
ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"
MINUTE_OF_TS = f"date_bin('1 minute', ts, {ORIGIN})"
# The hours wholly in the range (every minute of them in $__timeFilter's BETWEEN):
# [FIRST_HOUR, END_OF_HOURS), empty when the first is not before the end.
FIRST_HOUR = (
    f"(date_bin('1 hour', $__timeFrom()::timestamptz - interval '1 microsecond', {ORIGIN})"
    " + interval '1 hour')"
)
END_OF_HOURS = (
    f"(date_bin('1 hour', $__timeTo()::timestamptz - interval '59 minutes', {ORIGIN})"
    " + interval '1 hour')"
)
ROLLUP_FIGURES = (
    "readings, min_heart_rate, max_heart_rate, sum_heart_rate, sum_squares,"
    " low_anomalies, high_anomalies, newest_ts"
)


def _stddev(prefix: str = "") -> str:
    """The sample standard deviation of the heart rates from rollups' sums, 0 for one."""
    n, total, squares = (f"sum({prefix}{c})" for c in ("readings", "sum_heart_rate", "sum_squares"))
    return (
        f"round(coalesce(sqrt(greatest({squares} - {total} ^ 2 / {n}, 0)"
        f" / nullif({n} - 1, 0)), 0), 1)"
    )


def _rollups(customers: str) -> str:
    """The rollups of ``customers`` (a condition on customer_id) over a long range: the
    minutes before the whole hours, the hours, the minutes after them; each part read
    through its key, none over a short range."""
    minutes = f"{LONG} AND {customers} AND $__timeFilter(minute)"
    return f"""(
        SELECT {ROLLUP_FIGURES} FROM heartbeat_minutes_live
        WHERE {minutes} AND minute < {FIRST_HOUR}
        UNION ALL
        SELECT {ROLLUP_FIGURES} FROM heartbeat_hours_live
        WHERE {LONG} AND {customers} AND hour >= {FIRST_HOUR} AND hour < {END_OF_HOURS}
        UNION ALL
        SELECT {ROLLUP_FIGURES} FROM heartbeat_minutes_live
        WHERE {minutes} AND minute >= greatest({FIRST_HOUR}, {END_OF_HOURS})
    ) AS parts"""


# Customers seen since the start of the range, from one row per customer.
CUSTOMERS = f"""
    SELECT customer_id
    FROM customer_last_seen
    WHERE newest_ts >= {SEEN_SINCE_START}
    ORDER BY customer_id
    LIMIT 1000
"""

HEART_RATE = f"""
    SELECT $__timeGroupAlias(ts, $__interval),
           customer_id::text AS metric,
           avg(heart_rate) AS heart_rate
    FROM heartbeats
    WHERE {SHORT} AND $__timeFilter(ts) AND customer_id IN ($customer)
    GROUP BY 1, 2
    UNION ALL
    SELECT $__timeGroupAlias(minute, $__interval),
           customer_id::text,
           sum(sum_heart_rate)::numeric / sum(readings)
    FROM heartbeat_minutes_live
    WHERE {LONG} AND $__timeFilter(minute) AND customer_id IN ($customer)
    GROUP BY 1, 2
    ORDER BY 1
"""

SELECTED_STATS = f"""
    SELECT round(avg(heart_rate), 1) AS "avg",
           min(heart_rate) AS "min",
           max(heart_rate) AS "max",
           round(coalesce(stddev_samp(heart_rate), 0), 1) AS "stddev"
    FROM heartbeats
    WHERE {SHORT} AND $__timeFilter(ts) AND customer_id IN ($customer)
    HAVING count(*) > 0
    UNION ALL
    SELECT round(sum(sum_heart_rate)::numeric / sum(readings), 1),
           min(min_heart_rate),
           max(max_heart_rate),
           {_stddev()}
    FROM {_rollups("customer_id IN ($customer)")}
    WHERE {LONG}
    HAVING count(*) > 0
"""

# Over a long range, customer by customer in id order (index ranges of its minutes and
# hours), so the first 1000 with readings are found without aggregating every customer.
PER_CUSTOMER = f"""
    (SELECT customer_id AS "customer",
            count(*) AS "readings",
            round(avg(heart_rate), 1) AS "avg",
            min(heart_rate) AS "min",
            max(heart_rate) AS "max",
            round(coalesce(stddev_samp(heart_rate), 0), 1) AS "stddev",
            count(*) FILTER (WHERE anomaly IS NOT NULL) AS "anomalies",
            max(ts) AS "newest reading"
     FROM heartbeats
     WHERE {SHORT} AND $__timeFilter(ts)
     GROUP BY customer_id
     ORDER BY customer_id
     LIMIT 1000)
    UNION ALL
    (SELECT s.customer_id, r.readings, r.avg, r.min, r.max, r.stddev, r.anomalies, r.newest
     FROM customer_last_seen AS s
     CROSS JOIN LATERAL (
         SELECT sum(readings) AS readings,
                round(sum(sum_heart_rate)::numeric / sum(readings), 1) AS avg,
                min(min_heart_rate) AS min,
                max(max_heart_rate) AS max,
                {_stddev()} AS stddev,
                sum(low_anomalies + high_anomalies) AS anomalies,
                max(newest_ts) AS newest
         FROM {_rollups("customer_id = s.customer_id")}
     ) AS r
     WHERE {LONG} AND s.newest_ts >= {SEEN_SINCE_START} AND r.readings > 0
     ORDER BY s.customer_id
     LIMIT 1000)
    ORDER BY 1
"""

# Single readings, over any range: the partial index on anomalous readings gives the
# newest 500 without reading the others.
ANOMALIES = """
    SELECT ts AS "time",
           customer_id AS "customer",
           heart_rate AS "heart rate",
           anomaly
    FROM heartbeats
    WHERE anomaly IS NOT NULL AND $__timeFilter(ts)
    ORDER BY ts DESC
    LIMIT 500
"""

# Per-minute panels over all customers: on the readings, bucketed with date_bin
# (timestamp arithmetic, several times cheaper per row than $__timeGroupAlias's
# numeric one); over long ranges, one row a minute for the whole fleet.
ANOMALIES_PER_MINUTE = f"""
    SELECT {MINUTE_OF_TS} AS "time",
           anomaly AS metric,
           count(*) AS anomalies
    FROM heartbeats
    WHERE {SHORT} AND anomaly IS NOT NULL AND $__timeFilter(ts)
    GROUP BY 1, 2
    UNION ALL
    SELECT minute, kind, CASE kind WHEN 'low' THEN low_anomalies ELSE high_anomalies END
    FROM heartbeat_fleet_minutes_live
    CROSS JOIN (VALUES ('low'), ('high')) AS kinds (kind)
    WHERE {LONG} AND $__timeFilter(minute)
      AND CASE kind WHEN 'low' THEN low_anomalies ELSE high_anomalies END > 0
    ORDER BY 1
"""

READINGS_PER_MINUTE = f"""
    SELECT {MINUTE_OF_TS} AS "time",
           count(*) AS readings,
           count(DISTINCT customer_id) AS customers
    FROM heartbeats
    WHERE {SHORT} AND $__timeFilter(ts)
    GROUP BY 1
    UNION ALL
    SELECT minute, readings, customers
    FROM heartbeat_fleet_minutes_live
    WHERE {LONG} AND $__timeFilter(minute)
    ORDER BY 1
"""

# Customers seen since the start of the dashboard's range whose newest reading is older
# than STALE_AFTER, from one row per customer. A customer silent for longer than the whole
# range is not listed. customer_last_seen may be up to 10 s behind a customer's newest
# reading.
STALE_COUNT = f"""
    SELECT count(*) AS "stale customers"
    FROM customer_last_seen
    WHERE newest_ts >= $__timeFrom() AND newest_ts < now() - interval '{STALE_AFTER}'
"""

STALE_LIST = f"""
    SELECT customer_id AS "customer",
           newest_ts AS "newest reading",
           extract(epoch FROM now() - newest_ts) AS "silent for"
    FROM customer_last_seen
    WHERE newest_ts >= $__timeFrom() AND newest_ts < now() - interval '{STALE_AFTER}'
    ORDER BY newest_ts
    LIMIT 500
"""


def customers_variable() -> QueryVariable:
    return (
        QueryVariable("customer")
        .label("Customer")
        .description("Customers seen since the start of the dashboard's time range.")
        .datasource(POSTGRES)
        .query(SqlQuery(CUSTOMERS).build().raw_sql)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.NUMERICAL_ASC)
        .multi(True)
        .include_all(False)
    )


def selected() -> list[Panel]:
    return [
        timeseries(
            "Heart rate of $customer",
            f"Mean heart rate per interval. Dashed lines: the anomaly bands (below {LOW_BPM} "
            f"and above {HIGH_BPM} bpm). Ranges over {ROLLUPS_ABOVE} read the per-minute "
            "rollups.",
            POSTGRES,
            [SqlQuery(HEART_RATE, sql_format="time_series")],
            unit="suffix: bpm",
            width=16,
            height=9,
            threshold_lines=((None, "blue"), (LOW_BPM, "green"), (HIGH_BPM, "red")),
        ),
        stat(
            "Statistics of $customer",
            "Over the dashboard's time range, across the selected customers. Ranges over "
            f"{ROLLUPS_ABOVE} read the rollups (whole minutes): hourly ones for the hours "
            "wholly in the range, per-minute ones for the rest.",
            POSTGRES,
            [SqlQuery(SELECTED_STATS)],
            unit="suffix: bpm",
            width=8,
            height=9,
        ),
    ]


def freshness() -> list[Panel]:
    return [
        stat(
            "Stale customers",
            f"Customers seen in the time range whose newest reading is older than {STALE_AFTER}.",
            POSTGRES,
            [SqlQuery(STALE_COUNT)],
            width=6,
            height=8,
            steps=((None, "green"), (1, "red")),
        ),
        table(
            "Customers without a reading for 5 minutes",
            "Oldest first; 'silent for' counts from their newest reading to now.",
            POSTGRES,
            [SqlQuery(STALE_LIST)],
            width=9,
            units={"silent for": "s"},
        ),
        timeseries(
            "Readings stored per minute",
            "Stored readings and distinct customers per minute, by reading time.",
            POSTGRES,
            [SqlQuery(READINGS_PER_MINUTE, sql_format="time_series")],
            unit="short",
            width=9,
        ),
    ]


def anomalies() -> list[Panel]:
    return [
        table(
            "Anomalies",
            f"Stored readings below {LOW_BPM} (low) or above {HIGH_BPM} bpm (high), newest first, "
            "from the readings whatever the range (kept RAW_RETENTION_DAYS).",
            POSTGRES,
            [SqlQuery(ANOMALIES)],
        ),
        timeseries(
            "Anomalies per minute",
            "Flagged readings per minute, by kind.",
            POSTGRES,
            [SqlQuery(ANOMALIES_PER_MINUTE, sql_format="time_series")],
            unit="short",
        ),
    ]


def statistics() -> list[Panel]:
    return [
        table(
            "Per-customer statistics",
            "Every customer with readings in the time range: count, mean, extremes, standard "
            "deviation (sample), anomalies and newest reading. Ranges over "
            f"{ROLLUPS_ABOVE} read the rollups (whole minutes): hourly ones for the hours "
            "wholly in the range, per-minute ones for the rest.",
            POSTGRES,
            [SqlQuery(PER_CUSTOMER)],
            width=24,
            height=10,
        )
    ]


def build() -> Dashboard:
    dashboard = (
        Dashboard("Heartbeat heart rates")
        .uid(UID)
        .description(
            "Heart rates stored in PostgreSQL: per customer, anomalies, customers gone quiet."
        )
        .tags(["heartbeat"])
        .refresh("1m")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(customers_variable())
    )
    sections = {
        "Selected customers": selected(),
        "Freshness": freshness(),
        "Anomalies": anomalies(),
        "All customers": statistics(),
    }
    for title, panels in sections.items():
        dashboard = dashboard.with_row(Row(title))
        for panel in panels:
            dashboard = dashboard.with_panel(panel)
    return dashboard
