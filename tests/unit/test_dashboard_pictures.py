"""scripts/dashboard_pictures.py draws every committed dashboard, panel type by panel type."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def pictures():
    spec = importlib.util.spec_from_file_location(
        "dashboard_pictures", ROOT / "scripts" / "dashboard_pictures.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["dashboard_pictures"] = module
    spec.loader.exec_module(module)
    sys.path.insert(0, str(ROOT))
    return module


class FakeSources:
    """Answers every query with one made-up series, and records what was asked."""

    prometheus_url = "http://prometheus.invalid"

    def __init__(self) -> None:
        self.asked: list[str] = []

    def promql(self, expr, start, end, step):
        self.asked.append(expr)
        points = [[start.timestamp() + i * step, str(i % 3)] for i in range(10)]
        return [{"metric": {"component": "consumer", "version": "0.1.0"}, "values": points}]

    def sql(self, statement):
        self.asked.append(statement)
        now = datetime.now(UTC)
        if "customer_last_seen" in statement and "ORDER BY customer_id" in statement:
            return ["customer_id"], [(1,), (2,)]
        return ["time", "metric", "value"], [
            (now - timedelta(minutes=i), "1", 70.0) for i in range(5)
        ]


def test_every_committed_dashboard_is_drawn_from_its_own_queries(pictures, tmp_path):
    boards = sorted(pictures.DASHBOARDS.glob("*.json"))
    assert len(boards) == 3
    for board in boards:
        sources = FakeSources()
        out = pictures.render(board, sources, 60, tmp_path)
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert sources.asked  # every panel asked its own data source
        assert not any("$" in query for query in sources.asked)  # every variable filled


def test_sql_rows_become_one_series_per_metric(pictures):
    at = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [(at, "7", 70.0), (at, "8", 80.0), (at + timedelta(minutes=1), "7", 71.0)]
    series = pictures._sql_series(["time", "metric", "heart_rate"], rows)
    assert {s.name: s.values for s in series} == {"7": [70.0, 71.0], "8": [80.0]}
    [stat] = pictures._sql_series(["avg"], [(72.5,)])
    assert (stat.name, stat.last()) == ("avg", 72.5)


def test_legends_follow_the_panels_legend_format(pictures):
    assert pictures._legend("{{reason}}", {"reason": "invalid_json"}) == "invalid_json"
    assert pictures._legend(None, {"__name__": "up", "job": "x"}) == "job=x"
