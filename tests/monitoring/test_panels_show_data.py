"""Every pipeline panel and alert, run against a real Prometheus and PostgreSQL fed by the
pipeline (the operator's: test_operator_panels_show_data.py).

A dashboard that renders "No data" is worse than none: each PromQL panel query must return
series, each SQL panel query rows, each alert expression must evaluate and, with its
threshold comparisons removed, see the series it watches.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from numbers import Number

import psycopg
import pytest

from heartbeat.validation import Reason
from heartbeat_localstack.prometheus import PrometheusQueryError
from tests.monitoring.queries import (
    alert_rules,
    dashboards,
    expand_promql,
    expand_sql,
    metric_names,
    panel_queries,
    pipeline_alert_rules,
    pipeline_panel_queries,
    sql_value,
    variables,
    without_thresholds,
)
from tests.monitoring.test_metric_coverage import AWAITED
from tests.monitoring.world import CUSTOMERS, GRAFANA_INTERVALS, STALE_CUSTOMERS
from tests.support.polling import wait_for

pytestmark = pytest.mark.integration

TIME_RANGE = timedelta(hours=1)  # both dashboards open on the last hour
# Over an hour, heart-rate panels read the per-minute rollups instead of the readings.
RANGES = {"readings": TIME_RANGE, "rollups": timedelta(hours=6)}


def _sql(conninfo: str, statement: str) -> tuple[list[str], list[tuple[object, ...]]]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        cursor = conn.execute(statement)  # type: ignore[call-overload]
        return [column.name for column in cursor.description], cursor.fetchall()


def _variable_values(monitored, dashboard, span: timedelta = TIME_RANGE) -> dict[str, str]:
    """Each SQL variable's options as Grafana would load them; the first two selected."""
    end = datetime.now(UTC)
    values: dict[str, str] = {}
    for variable in variables(dashboard):
        query = variable["query"]
        sql = query if isinstance(query, str) else query["rawSql"]
        expanded = expand_sql(sql, start=end - span, end=end, values=values)
        _, rows = _sql(monitored.pipeline.conninfo, expanded)
        options = [str(row[0]) for row in rows]
        assert options, f"variable ${variable['name']} has no options"
        values[variable["name"]] = sql_value(options[:2], multi=variable.get("multi", False))
    return values


def test_every_prometheus_panel_query_returns_series_from_the_running_pipeline(monitored):
    queries = [q for q in pipeline_panel_queries() if q.datasource == "prometheus"]
    assert len(queries) >= 15
    empty = []
    for query in queries:
        result = monitored.prometheus.query(expand_promql(query.text, GRAFANA_INTERVALS))
        if not result:
            empty.append(f"{query}: {query.text}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


def test_rejects_by_reason_show_every_reason_and_the_out_of_range_ones_counted(monitored):
    by_reason = {
        item["metric"]["reason"]: float(item["value"][1])
        for item in monitored.prometheus.query("sum by (reason) (heartbeat_rejected_total)")
    }
    assert set(by_reason) == {reason.value for reason in Reason}, (
        "each reason's series exists from the start, at zero"
    )
    assert by_reason["heart_rate_out_of_range"] > 0
    kinds = monitored.prometheus.query("sum by (kind) (heartbeat_anomalies_total)")
    assert {item["metric"]["kind"] for item in kinds} == {"low", "high"}


def test_replicas_up_counts_one_producer_and_one_consumer(monitored):
    replicas = {
        item["metric"]["component"]: float(item["value"][1])
        for item in monitored.prometheus.query("count by (component) (heartbeat_build_info)")
    }
    assert replicas == {"producer": 1.0, "consumer": 1.0}


@pytest.mark.parametrize("span", RANGES.values(), ids=RANGES.keys())
def test_every_postgresql_panel_query_runs_with_grafana_macros_expanded_and_returns_rows(
    monitored, span
):
    checked, problems = 0, []
    for name, dashboard in dashboards().items():
        values = _variable_values(monitored, dashboard, span)
        for query in panel_queries(name, dashboard):
            if query.datasource == "prometheus":
                continue
            checked += 1
            end = datetime.now(UTC)
            sql = expand_sql(query.text, start=end - span, end=end, values=values)
            try:
                columns, rows = _sql(monitored.pipeline.conninfo, sql)
            except psycopg.Error as error:
                problems.append(f"{query} fails: {error}\n{sql}")
                continue
            if not rows:
                problems.append(f"{query} returns no rows:\n{sql}")
            elif query.sql_format == "time_series" and not _is_time_series(columns, rows[0]):
                problems.append(f"{query}: needs a time column and a numeric one, has {columns}")
    assert checked >= 8
    assert not problems, "\n\n".join(problems)


def _is_time_series(columns: list[str], row: tuple[object, ...]) -> bool:
    values = dict(zip(columns, row, strict=True))
    numeric = [c for c, v in values.items() if c != "time" and isinstance(v, Number | Decimal)]
    return "time" in values and bool(numeric)


# What two long-range panels must show, computed from the readings themselves.
FROM_READINGS = {
    "Per-customer statistics": """
        SELECT customer_id, count(*), round(avg(heart_rate), 1), min(heart_rate),
               max(heart_rate), round(coalesce(stddev_samp(heart_rate), 0), 1),
               count(*) FILTER (WHERE anomaly IS NOT NULL), max(ts)
        FROM heartbeats WHERE ts >= %(start)s AND ts < %(end)s
        GROUP BY 1 ORDER BY 1 LIMIT 1000
    """,
    "Readings stored per minute": """
        SELECT date_bin('1 minute', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00'), count(*),
               count(DISTINCT customer_id)
        FROM heartbeats WHERE ts >= %(start)s AND ts < %(end)s
        GROUP BY 1 ORDER BY 1
    """,
}


@pytest.mark.parametrize("panel", FROM_READINGS)
def test_over_a_long_range_the_rollups_show_what_the_readings_hold(monitored, panel):
    (name, dashboard) = next((n, d) for n, d in dashboards().items() if variables(d))
    (query,) = [q for q in panel_queries(name, dashboard) if q.panel == panel]
    # Whole minutes, ended a minute ago: the rollups' last minute runs to `end` + 1 min.
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    start = end - RANGES["rollups"]
    conninfo = monitored.pipeline.conninfo
    _, rolled_up = _sql(conninfo, expand_sql(query.text, start=start, end=end, values={}))
    with psycopg.connect(conninfo) as conn:
        bounds = {"start": start, "end": end + timedelta(minutes=1)}
        read = conn.execute(FROM_READINGS[panel], bounds).fetchall()
    assert len(rolled_up) >= len(STALE_CUSTOMERS), "the quiet customers at least"
    assert [_rounded(row) for row in rolled_up] == [_rounded(row) for row in read]


def _rounded(row: tuple[object, ...]) -> tuple[object, ...]:
    """Figures to 0.1: a standard deviation from sums may round the other way."""
    return tuple(round(float(v), 1) if isinstance(v, Decimal | float) else v for v in row)


def test_the_customer_variable_offers_the_live_and_the_quiet_customers(monitored):
    (dashboard,) = [d for d in dashboards().values() if variables(d)]
    (variable,) = variables(dashboard)
    end = datetime.now(UTC)
    _, rows = _sql(
        monitored.pipeline.conninfo,
        expand_sql(variable["query"], start=end - TIME_RANGE, end=end, values={}),
    )
    assert {row[0] for row in rows} == set(range(1, CUSTOMERS + 1)) | STALE_CUSTOMERS


def test_stale_customer_panels_list_exactly_the_customers_without_a_reading_for_5_minutes(
    monitored,
):
    (name, dashboard) = next((n, d) for n, d in dashboards().items() if variables(d))
    stale = {q.panel: q for q in panel_queries(name, dashboard) if "5 minutes" in q.text}
    assert len(stale) == 2, sorted(stale)
    end = datetime.now(UTC)
    for query in stale.values():
        sql = expand_sql(query.text, start=end - TIME_RANGE, end=end, values={})
        columns, rows = _sql(monitored.pipeline.conninfo, sql)
        if "customer" in columns:
            assert {row[columns.index("customer")] for row in rows} == STALE_CUSTOMERS
        else:
            assert rows == [(len(STALE_CUSTOMERS),)]


def test_every_alert_expression_evaluates_and_sees_its_series_without_the_threshold(monitored):
    blind = []
    for rule in pipeline_alert_rules():
        try:
            monitored.prometheus.query(rule["expr"])
        except PrometheusQueryError as error:
            pytest.fail(f"{rule['alert']} does not evaluate: {error}")
        for side in without_thresholds(rule["expr"]):
            result = monitored.prometheus.query(side)
            if metric_names(side) & set(AWAITED):
                assert not result, f"{side} has data now: update AWAITED"
            elif not result:
                blind.append(f"{rule['alert']}: {side}")
    assert not blind, "alert expressions that see no series:\n" + "\n".join(blind)


def test_prometheus_evaluates_every_loaded_rule_without_error(monitored):
    rules = {
        rule["name"]: rule
        for group in monitored.prometheus.rule_groups()
        for rule in group["rules"]
    }
    assert set(rules) == {rule["alert"] for rule in alert_rules()}
    for name, rule in rules.items():
        assert rule["health"] == "ok", f"{name}: {rule.get('lastError')}"
        assert not rule["lastEvaluation"].startswith("0001"), f"{name} was never evaluated"


def test_a_healthy_pipeline_meets_no_alert_condition_but_its_stale_customers(monitored):
    rules = pipeline_alert_rules()

    def conditions() -> dict[str, list]:
        return {rule["alert"]: monitored.prometheus.query(rule["expr"]) for rule in rules}

    # A rule fires only when its condition holds for its `for` (minutes): a check that fails
    # once on a loaded machine (a dependency probe that timed out) clears at the next one,
    # a condition the healthy pipeline really meets stays and fails the test.
    met: dict[str, list] = {}

    def only_stale_customers() -> bool:
        nonlocal met
        met = conditions()
        return not [
            name for name, result in met.items() if result and name != "HeartbeatCustomersStale"
        ]

    with contextlib.suppress(AssertionError):
        wait_for(only_stale_customers, 30, "no alert condition but the stale customers'")
    # The world has three customers silent for 15-20 minutes on purpose.
    stale = met.pop("HeartbeatCustomersStale")
    assert [float(sample["value"][1]) for sample in stale] == [float(len(STALE_CUSTOMERS))]
    assert {name: result for name, result in met.items() if result} == {}
