"""What the dashboards and alert rules ask, in a form the tests can run.

* panel queries of the committed dashboards, with Grafana's variables and SQL macros
  expanded the way Grafana expands them (``expand_sql``, ``expand_promql``);
* metric names a PromQL expression reads (``metric_names``);
* an alert's underlying series: its expression without the threshold comparisons
  (``without_thresholds``);
* the metrics the application and the operator export, by family, from a fresh
  ``CollectorRegistry``;
* which running world proves each dashboard and rule group: the pipeline (``world.py``) or
  the operator on a local control plane (``operator_world.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from heartbeat.metrics import ConsumerMetrics, ProducerMetrics
from heartbeat_operator.metrics import OperatorMetrics

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
RULES = GRAFANA / "alerts" / "heartbeat.rules.yaml"
RULE_TESTS = GRAFANA / "alerts" / "tests"
PROVISIONING = GRAFANA / "provisioning"

# What the operator world proves; the pipeline world proves every other dashboard and group.
OPERATOR_DASHBOARDS = frozenset({"heartbeat-operator.json"})
OPERATOR_RULE_GROUPS = frozenset({"heartbeat-operator"})


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    datasource: str  # the data source's plugin type
    ref_id: str
    text: str  # PromQL or SQL, as stored
    sql_format: str | None = None  # table or time_series, for SQL

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}"


def dashboards() -> dict[str, dict[str, Any]]:
    """The committed dashboards by file name."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def _panels(items: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from _panels(item.get("panels", []))


def panel_queries(name: str, dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    queries = []
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            source = (target.get("datasource") or panel.get("datasource") or {}).get("type", "")
            text = target.get("expr") if source == "prometheus" else target.get("rawSql")
            queries.append(
                PanelQuery(
                    dashboard=name,
                    panel=panel["title"],
                    datasource=source,
                    ref_id=target.get("refId", ""),
                    text=text or "",
                    sql_format=target.get("format") if source != "prometheus" else None,
                )
            )
    return queries


def all_panel_queries() -> list[PanelQuery]:
    return [q for name, board in dashboards().items() for q in panel_queries(name, board)]


def operator_panel_queries() -> list[PanelQuery]:
    return [q for q in all_panel_queries() if q.dashboard in OPERATOR_DASHBOARDS]


def pipeline_panel_queries() -> list[PanelQuery]:
    return [q for q in all_panel_queries() if q.dashboard not in OPERATOR_DASHBOARDS]


def variables(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(dashboard.get("templating", {}).get("list", []))


# --- Grafana's expansion --------------------------------------------------------------------

_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_MACRO = re.compile(r"\$(__\w+)\(([^)]*)\)")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _seconds(text: str) -> float:
    match = _DURATION.match(text.strip().strip("'"))
    if match is None:
        raise ValueError(f"not a Grafana interval: {text!r}")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _substitute(text: str, values: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for ${name} in {text!r}")
        return values[name]

    return _VARIABLE.sub(replace, text)


def expand_promql(expr: str, values: Mapping[str, str]) -> str:
    """`expr` with $variables (and Grafana's $__rate_interval...) replaced by `values`."""
    return _substitute(expr, values)


def sql_value(selected: Sequence[str], *, multi: bool) -> str:
    """A variable's value in SQL as Grafana writes it: multi-value ones quoted and joined."""
    if not multi:
        return selected[0]
    return ",".join("'" + value.replace("'", "''") + "'" for value in selected)


def expand_sql(
    sql: str,
    *,
    start: datetime,
    end: datetime,
    values: Mapping[str, str],
    interval: str = "1m",
) -> str:
    """`sql` as Grafana's PostgreSQL data source sends it (no TimescaleDB)."""
    sql = sql.replace("$__interval_ms", str(int(_seconds(interval) * 1000)))
    sql = sql.replace("$__interval", interval)

    def macro(match: re.Match[str]) -> str:
        name = match.group(1)
        args = [arg.strip() for arg in match.group(2).split(",")]
        if name == "__time":
            return f'{args[0]} AS "time"'
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{_rfc3339(start)}' AND '{_rfc3339(end)}'"
        if name == "__timeFrom":
            return f"'{_rfc3339(start)}'"
        if name == "__timeTo":
            return f"'{_rfc3339(end)}'"
        if name in ("__timeGroup", "__timeGroupAlias"):
            step = f"{_seconds(args[1]):g}"
            group = f"floor(extract(epoch from {args[0]})/{step})*{step}"
            return group + (' AS "time"' if name == "__timeGroupAlias" else "")
        raise ValueError(f"the tests do not know Grafana's macro ${name}; teach expand_sql")

    return _substitute(_MACRO.sub(macro, sql), values)


# --- PromQL -----------------------------------------------------------------------------------

_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
}
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:]|\s*\()")


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` selects (not functions, keywords, labels or durations)."""
    text = _STRINGS.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _LABEL_LISTS.sub(" ", text)
    text = re.sub(r"\boffset\s+\S+", " ", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}


# A set operator and the vector matching that may follow it (`and on (instance)`): neither
# belongs to the side after it.
_SET_OPERATOR = re.compile(r"\s+(and|or|unless)(\s+(on|ignoring)\s*\([^)]*\))?\s+")
_THRESHOLD = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*(bool\s+)?[-+]?(\d+\.?\d*([eE][-+]?\d+)?|Inf)\s*$")


def _split_top_level(expr: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for index, char in enumerate(expr):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            match = _SET_OPERATOR.match(expr, index)
            if match and index >= start:
                parts.append(expr[start:index])
                start = match.end()
    parts.append(expr[start:])
    return [part.strip() for part in parts]


def without_thresholds(expr: str) -> list[str]:
    """The sides of `expr` (joined by and/or/unless), each without its `<op> <number>`.

    Raises ValueError when no side ends in such a comparison: the rule file promises
    that every alert is written that way.
    """
    sides = _split_top_level(" ".join(expr.split()))
    stripped = [_THRESHOLD.sub("", side) for side in sides]
    if stripped == sides:
        raise ValueError(f"no threshold comparison to remove in {expr!r}")
    return stripped


def rule_groups() -> dict[str, list[dict[str, Any]]]:
    """Group name -> its alerting rules."""
    document = yaml.safe_load(RULES.read_text())
    return {
        group["name"]: [rule for rule in group["rules"] if "alert" in rule]
        for group in document["groups"]
    }


def alert_rules() -> list[dict[str, Any]]:
    return [rule for rules in rule_groups().values() for rule in rules]


def operator_alert_rules() -> list[dict[str, Any]]:
    return [
        r for name, rules in rule_groups().items() if name in OPERATOR_RULE_GROUPS for r in rules
    ]


def pipeline_alert_rules() -> list[dict[str, Any]]:
    return [
        r
        for name, rules in rule_groups().items()
        if name not in OPERATOR_RULE_GROUPS
        for r in rules
    ]


# --- what the application exports ------------------------------------------------------------

_SERIES_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
    "info": ("_info",),
}


def exported_families() -> dict[str, set[str]]:
    """Metric family -> the series names Prometheus stores for it, for every metrics class
    of the processes (heartbeat.metrics and heartbeat_operator.metrics), each registered on
    a fresh CollectorRegistry."""
    families: dict[str, set[str]] = {}
    for metrics_class in (ProducerMetrics, ConsumerMetrics, OperatorMetrics):
        registry = CollectorRegistry()
        metrics_class(registry)
        for family in registry.collect():
            series = {family.name + suffix for suffix in _SERIES_SUFFIXES[family.type]}
            families.setdefault(family.name, set()).update(series)
    return families


def family_of(series: str, families: Mapping[str, set[str]]) -> str | None:
    for family, names in families.items():
        if series in names:
            return family
    return None
