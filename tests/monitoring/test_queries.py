"""How the tests read dashboards and rules: Grafana's expansion, metric names, thresholds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.monitoring.queries import (
    expand_promql,
    expand_sql,
    metric_names,
    sql_value,
    without_thresholds,
)

START = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
END = datetime(2026, 1, 2, 4, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sql", "expanded"),
    [
        (
            "WHERE $__timeFilter(ts)",
            "WHERE ts BETWEEN '2026-01-02T03:04:05.678000Z' AND '2026-01-02T04:04:05Z'",
        ),
        (
            "ts >= $__timeFrom() AND ts < $__timeTo()",
            "ts >= '2026-01-02T03:04:05.678000Z' AND ts < '2026-01-02T04:04:05Z'",
        ),
        (
            "SELECT $__timeGroupAlias(ts, '1m'), 1",
            'SELECT floor(extract(epoch from ts)/60)*60 AS "time", 1',
        ),
        (
            "GROUP BY $__timeGroup(ts, $__interval)",
            "GROUP BY floor(extract(epoch from ts)/30)*30",
        ),
        ("SELECT $__time(ts)", 'SELECT ts AS "time"'),
        ("WHERE customer_id IN ($customer)", "WHERE customer_id IN ('1','2')"),
        ("WHERE customer_id = ${customer}", "WHERE customer_id = '1','2'"),
    ],
)
def test_sql_macros_and_variables_expand_as_grafana_expands_them(sql, expanded):
    values = {"customer": sql_value(["1", "2"], multi=True)}
    assert expand_sql(sql, start=START, end=END, values=values, interval="30s") == expanded


def test_an_unknown_sql_macro_or_variable_is_an_error_not_left_in_the_query():
    with pytest.raises(ValueError, match="__unixEpochFilter"):
        expand_sql("WHERE $__unixEpochFilter(t)", start=START, end=END, values={})
    with pytest.raises(KeyError, match="region"):
        expand_sql("WHERE r = $region", start=START, end=END, values={})


def test_single_value_variables_are_not_quoted_and_multi_value_ones_escape_quotes():
    assert sql_value(["7"], multi=False) == "7"
    assert sql_value(["o'brien", "x"], multi=True) == "'o''brien','x'"


def test_promql_variables_are_replaced_and_unknown_ones_are_an_error():
    expr = "rate(x[$__rate_interval]) offset ${shift}"
    assert expand_promql(expr, {"__rate_interval": "30s", "shift": "1m"}) == (
        "rate(x[30s]) offset 1m"
    )
    with pytest.raises(KeyError):
        expand_promql("rate(x[$__range])", {})


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("sum by (reason) (rate(heartbeat_rejected_total[5m]))", {"heartbeat_rejected_total"}),
        (
            "histogram_quantile(0.99, sum by (le) (rate(heartbeat_db_write_seconds_bucket[5m])))",
            {"heartbeat_db_write_seconds_bucket"},
        ),
        ('up{job=~"heartbeat.*"} == 0', {"up"}),
        ("a / on (instance) group_left (version) b offset 5m", {"a", "b"}),
        ('count(x{reason="rate(y)"}) > 1e3 and bool z', {"x", "z"}),
        ("max(heartbeat_stale_customers) > Inf", {"heartbeat_stale_customers"}),
        ("deriv(lag[10m:1m])", {"lag"}),
    ],
)
def test_metric_names_are_the_selected_series_not_functions_labels_or_keywords(expr, names):
    assert metric_names(expr) == names


@pytest.mark.parametrize(
    ("expr", "sides"),
    [
        ('up{job="x"} == 0', ['up{job="x"}']),
        ("sum(a) / sum(b)\n  > 0.05", ["sum(a) / sum(b)"]),
        ("sum(a) > 1000\nand\nsum(deriv(a[10m])) > 0", ["sum(a)", "sum(deriv(a[10m]))"]),
        ("(x > 1 and y > 2) / z > 3", ["(x > 1 and y > 2) / z"]),
        ("x < 1 unless y", ["x", "y"]),
        ("x >= bool -2.5e1", ["x"]),
        (
            "sum by (i, t) (x) > 0 and on (i) sum by (i) (y) < 1",
            ["sum by (i, t) (x)", "sum by (i) (y)"],
        ),
        ("x > 0 unless ignoring(t) y", ["x", "y"]),
    ],
)
def test_thresholds_are_removed_from_every_side_of_an_alert_expression(expr, sides):
    assert without_thresholds(expr) == sides


def test_an_alert_expression_without_a_threshold_comparison_is_rejected():
    with pytest.raises(ValueError, match="no threshold"):
        without_thresholds("absent(up)")
