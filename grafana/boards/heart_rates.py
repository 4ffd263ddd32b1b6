"""Heart rates from PostgreSQL: the readings themselves, per customer.

Tables and columns are those of ``sql/0001.heartbeats.sql``. Queries use Grafana's SQL
macros (``$__timeFilter``, ``$__timeFrom()``, ``$__timeGroupAlias``) and the ``$customer``
variable; the monitoring tests expand them as Grafana does and run every query against a
real database that the pipeline filled.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, QueryVariable, Row
from grafana_foundation_sdk.models.dashboard import VariableRefresh, VariableSort

from boards.datasources import POSTGRES, SqlQuery
from boards.panels import Panel, stat, table, timeseries

UID = "heartbeat-heart-rates"
# A customer is stale when their newest reading is older than this (the original design).
STALE_AFTER = "5 minutes"
LOW_BPM, HIGH_BPM = 45, 180  # heartbeat.validation's anomaly bands

CUSTOMERS = """
    SELECT DISTINCT customer_id
    FROM heartbeats
    WHERE $__timeFilter(ts)
    ORDER BY customer_id
    LIMIT 1000
"""

HEART_RATE = """
    SELECT $__timeGroupAlias(ts, $__interval),
           customer_id::text AS metric,
           avg(heart_rate) AS heart_rate
    FROM heartbeats
    WHERE $__timeFilter(ts) AND customer_id IN ($customer)
    GROUP BY 1, 2
    ORDER BY 1
"""

SELECTED_STATS = """
    SELECT round(avg(heart_rate), 1) AS "avg",
           min(heart_rate) AS "min",
           max(heart_rate) AS "max",
           round(coalesce(stddev_samp(heart_rate), 0), 1) AS "stddev"
    FROM heartbeats
    WHERE $__timeFilter(ts) AND customer_id IN ($customer)
"""

PER_CUSTOMER = """
    SELECT customer_id AS "customer",
           count(*) AS "readings",
           round(avg(heart_rate), 1) AS "avg",
           min(heart_rate) AS "min",
           max(heart_rate) AS "max",
           round(coalesce(stddev_samp(heart_rate), 0), 1) AS "stddev",
           count(*) FILTER (WHERE anomaly IS NOT NULL) AS "anomalies",
           max(ts) AS "newest reading"
    FROM heartbeats
    WHERE $__timeFilter(ts)
    GROUP BY customer_id
    ORDER BY customer_id
    LIMIT 1000
"""

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

ANOMALIES_PER_MINUTE = """
    SELECT $__timeGroupAlias(ts, '1m'),
           anomaly AS metric,
           count(*) AS anomalies
    FROM heartbeats
    WHERE anomaly IS NOT NULL AND $__timeFilter(ts)
    GROUP BY 1, 2
    ORDER BY 1
"""

READINGS_PER_MINUTE = """
    SELECT $__timeGroupAlias(ts, '1m'),
           count(*) AS readings,
           count(DISTINCT customer_id) AS customers
    FROM heartbeats
    WHERE $__timeFilter(ts)
    GROUP BY 1
    ORDER BY 1
"""

# Customers seen since the start of the dashboard's range whose newest reading is older
# than STALE_AFTER. A customer silent for longer than the whole range is not listed.
STALE_COUNT = f"""
    SELECT count(*) AS "stale customers"
    FROM (
        SELECT customer_id
        FROM heartbeats
        WHERE ts >= $__timeFrom()
        GROUP BY customer_id
        HAVING max(ts) < now() - interval '{STALE_AFTER}'
    ) AS stale
"""

STALE_LIST = f"""
    SELECT customer_id AS "customer",
           max(ts) AS "newest reading",
           extract(epoch FROM now() - max(ts)) AS "silent for"
    FROM heartbeats
    WHERE ts >= $__timeFrom()
    GROUP BY customer_id
    HAVING max(ts) < now() - interval '{STALE_AFTER}'
    ORDER BY max(ts)
    LIMIT 500
"""


def customers_variable() -> QueryVariable:
    return (
        QueryVariable("customer")
        .label("Customer")
        .description("Customers with readings in the dashboard's time range.")
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
            f"and above {HIGH_BPM} bpm).",
            POSTGRES,
            [SqlQuery(HEART_RATE, sql_format="time_series")],
            unit="suffix: bpm",
            width=16,
            height=9,
            threshold_lines=((None, "blue"), (LOW_BPM, "green"), (HIGH_BPM, "red")),
        ),
        stat(
            "Statistics of $customer",
            "Over the dashboard's time range, across the selected customers.",
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
            f"Stored readings below {LOW_BPM} (low) or above {HIGH_BPM} bpm (high), newest first.",
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
            "deviation (sample), anomalies and newest reading.",
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
