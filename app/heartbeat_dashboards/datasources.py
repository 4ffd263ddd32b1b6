"""The two data sources every panel reads, and the query types that address them.

The UIDs are the ones ``grafana/provisioning/datasources/heartbeat.yaml`` gives the data
sources, so a provisioned Grafana resolves every panel without a data-source variable.
The Foundation SDK has no PostgreSQL query type, so ``SqlQuery`` is one of our own (the
SDK's documented way to add a query type).
"""

from __future__ import annotations

from typing import Any, Literal, Self

from grafana_foundation_sdk.builders.prometheus import Dataquery as PrometheusQuery
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

PROMETHEUS_UID = "heartbeat-prometheus"
POSTGRES_UID = "heartbeat-postgres"
PROMETHEUS = DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)
POSTGRES = DataSourceRef(type_val="grafana-postgresql-datasource", uid=POSTGRES_UID)

SqlFormat = Literal["table", "time_series"]


def promql(ref_id: str, expr: str, legend: str = "") -> PrometheusQuery:
    """A range query on the Prometheus data source."""
    query = PrometheusQuery().ref_id(ref_id).datasource(PROMETHEUS).expr(expr).range()
    return query.legend_format(legend) if legend else query


def promql_table(ref_id: str, expr: str) -> PrometheusQuery:
    """An instant query shown as a table (one row per series)."""
    return (
        PrometheusQuery()
        .ref_id(ref_id)
        .datasource(PROMETHEUS)
        .expr(expr)
        .instant()
        .format(PromQueryFormat.TABLE)
    )


class SqlQueryModel(cogvariants.Dataquery):
    """A raw SQL query of Grafana's PostgreSQL data source, as the query editor saves it."""

    def __init__(self, raw_sql: str, sql_format: SqlFormat, ref_id: str) -> None:
        self.raw_sql = raw_sql
        self.format = sql_format
        self.ref_id = ref_id

    def to_json(self) -> dict[str, object]:
        return {
            "datasource": POSTGRES.to_json(),
            "editorMode": "code",
            "format": self.format,
            "rawQuery": True,
            "rawSql": self.raw_sql,
            "refId": self.ref_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(data["rawSql"], data.get("format", "table"), data.get("refId", "A"))


class SqlQuery(cogbuilder.Builder[cogvariants.Dataquery]):
    def __init__(self, raw_sql: str, *, sql_format: SqlFormat = "table", ref_id: str = "A"):
        self._model = SqlQueryModel(_tidy(raw_sql), sql_format, ref_id)

    def build(self) -> SqlQueryModel:
        return self._model


def _tidy(sql: str) -> str:
    """The statement without its source indentation, so the JSON reads like the editor."""
    lines = [line.rstrip() for line in sql.strip("\n").splitlines()]
    indent = min((len(line) - len(line.lstrip()) for line in lines if line), default=0)
    return "\n".join(line[indent:] for line in lines)
