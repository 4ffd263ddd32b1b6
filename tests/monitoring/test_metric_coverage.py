"""Dashboards and alerts read the metrics the code exports, and every metric is shown.

Both directions are checked against the metric classes of heartbeat.metrics (producer and
consumer) and heartbeat_operator.metrics (operator), each registered on a fresh
CollectorRegistry: a panel cannot ask for a metric that does not exist, and a new metric
cannot be added without a panel, unless it is listed below as internal.
"""

from __future__ import annotations

from tests.monitoring.queries import (
    alert_rules,
    all_panel_queries,
    exported_families,
    family_of,
    metric_names,
)

# Exported heartbeat_* metric families that no panel needs to show, and why.
INTERNAL: dict[str, str] = {}

# Metrics from outside the application that dashboards and rules may read.
FOREIGN: dict[str, str] = {"up": "Prometheus's own: whether the last scrape of a target worked"}

# Metrics an alert rule reads that the application does not export yet, and the rule.
AWAITED: dict[str, str] = {}


def _prometheus_queries():
    return [query for query in all_panel_queries() if query.datasource == "prometheus"]


def test_every_metric_a_panel_reads_is_exported_by_the_code():
    families = exported_families()
    unknown = {
        f"{query}: {name}"
        for query in _prometheus_queries()
        for name in metric_names(query.text)
        if name not in FOREIGN and family_of(name, families) is None
    }
    assert not unknown, f"panels read metrics nothing exports: {sorted(unknown)}"


def test_every_exported_metric_appears_in_a_panel_unless_listed_as_internal():
    families = exported_families()
    shown = {
        family_of(name, families)
        for query in _prometheus_queries()
        for name in metric_names(query.text)
    }
    missing = sorted(set(families) - shown - set(INTERNAL))
    assert not missing, f"exported but on no panel (add one, or list as INTERNAL): {missing}"
    assert all(family.startswith("heartbeat_") for family in families)


def test_the_internal_list_names_only_exported_metrics_that_no_panel_shows():
    families = exported_families()
    shown = {family_of(n, families) for q in _prometheus_queries() for n in metric_names(q.text)}
    for family in INTERNAL:
        assert family in families, f"{family} is listed as internal but not exported"
        assert family not in shown, f"{family} is listed as internal but a panel shows it"


def test_alert_rules_read_exported_metrics_or_ones_awaited_from_the_application():
    families = exported_families()
    for rule in alert_rules():
        for name in metric_names(rule["expr"]):
            known = name in FOREIGN or family_of(name, families) is not None
            assert known or name in AWAITED, f"{rule['alert']} reads {name}, which nothing exports"


def test_awaited_metrics_are_really_missing_so_the_list_shrinks_when_they_arrive():
    families = exported_families()
    for name in AWAITED:
        assert family_of(name, families) is None, f"{name} is exported now: remove it from AWAITED"
