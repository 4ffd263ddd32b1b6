"""Pictures of the three Grafana dashboards, drawn from their committed JSON and real data.

Grafana cannot run here, so this draws each panel the way Grafana would show it: the
panel's own queries (PromQL against Prometheus, SQL against PostgreSQL, with Grafana's
macros and the dashboard's variables filled in), laid out on the dashboard's grid, with
matplotlib. Only the panel types the dashboards use are drawn: timeseries, stat, table,
state-timeline and rows.

    python scripts/dashboard_pictures.py backfill --minutes 60   # readings of the last hour
    python scripts/dashboard_pictures.py render --out docs/dashboards

``backfill`` produces readings of the past through Kafka (the consumer stores them as any
other), so the heart-rate panels have an hour to show; ``render`` reads PROMETHEUS_URL and
the usual DATABASE_URL / PG* settings. A dashboard whose data source is not given is
skipped with a note.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "grafana" / "dashboards"


def backfill(minutes: float, customers: int, step: float, seed: int) -> int:
    from heartbeat.generator import ReadingGenerator
    from heartbeat.kafka import KafkaProducer, ensure_topics
    from heartbeat.settings import load_settings

    settings = load_settings()
    ensure_topics(settings, [settings.kafka_topic, settings.kafka_dlq_topic])
    generator = ReadingGenerator(customers=customers, seed=seed)
    start = datetime.now(UTC) - timedelta(minutes=minutes)
    failed: list[str] = []
    producer = KafkaProducer(
        settings, on_delivery=lambda report: failed.extend([report.error] if report.error else [])
    )
    rounds = int(minutes * 60 / step)
    sent = 0
    for reading in generator.rounds(start=start, step=timedelta(seconds=step)):
        if sent >= rounds * customers:
            break
        producer.produce(settings.kafka_topic, reading.key(), reading.to_json())
        producer.poll(0)
        sent += 1
    left = producer.flush(30)
    print(f"sent {sent} readings from {start:%H:%M} UTC, {len(failed) + left} not delivered")
    return 1 if failed or left else 0


# --- reading the data ---------------------------------------------------------------------


class Sources:
    """The two data sources, asked the way Grafana asks them."""

    def __init__(self, prometheus_url: str | None, conninfo: str | None) -> None:
        self.prometheus_url = prometheus_url.rstrip("/") if prometheus_url else None
        self.conninfo = conninfo

    def promql(self, expr: str, start: datetime, end: datetime, step: float) -> list[dict]:
        import json
        import urllib.parse
        import urllib.request

        assert self.prometheus_url is not None
        query = urllib.parse.urlencode(
            {"query": expr, "start": start.timestamp(), "end": end.timestamp(), "step": step}
        )
        url = f"{self.prometheus_url}/api/v1/query_range?{query}"
        with urllib.request.urlopen(url, timeout=30) as answer:
            body = json.load(answer)
        return list(body["data"]["result"])

    def sql(self, statement: str) -> tuple[list[str], list[tuple]]:
        import psycopg

        with psycopg.connect(self.conninfo or "", autocommit=True) as conn:
            conn.execute("SET jit = off")
            cursor = conn.execute(statement)  # type: ignore[arg-type]
            names = [column.name for column in cursor.description or []]
            return names, cursor.fetchall()


class Series:
    def __init__(self, name: str, times: list[datetime], values: list[float | None]) -> None:
        self.name, self.times, self.values = name, times, values

    def last(self) -> float | None:
        present = [v for v in self.values if v is not None]
        return present[-1] if present else None


def _legend(template: str | None, labels: dict[str, str]) -> str:
    if not template or template == "__auto":
        shown = {k: v for k, v in labels.items() if k != "__name__"}
        return ", ".join(f"{k}={v}" for k, v in shown.items()) or "value"
    text = template
    for key, value in labels.items():
        text = text.replace("{{" + key + "}}", value).replace("{{ " + key + " }}", value)
    return text


class Board:
    """One dashboard over one time range: its variables filled, its queries answered."""

    def __init__(self, board: dict, sources: Sources, start: datetime, end: datetime) -> None:
        self.board, self.sources, self.start, self.end = board, sources, start, end
        span = (end - start).total_seconds()
        self.step = max(15.0, round(span / 240 / 15) * 15)  # about 240 points a line
        self.values = {
            "__rate_interval": f"{int(max(60, 4 * self.step))}s",
            "__range": f"{int(span)}s",
            "__interval": f"{int(self.step)}s",
        }
        self.shown_values: dict[str, str] = {}
        for variable in board.get("templating", {}).get("list", []):
            self._fill(variable)

    def kind(self, panel: dict) -> str:
        source = panel.get("datasource") or {}
        return str(source.get("type", "")) if isinstance(source, dict) else ""

    def _fill(self, variable: dict) -> None:
        from tests.monitoring.queries import expand_sql, sql_value

        name = variable["name"]
        if variable.get("type") != "query" or "postgres" not in variable["datasource"]["type"]:
            raise SystemExit(f"variable ${name}: only PostgreSQL query variables are drawn")
        sql = expand_sql(
            variable["query"], start=self.start, end=self.end, values=self.values, interval="1m"
        )
        _, rows = self.sources.sql(sql)
        chosen = [str(row[0]) for row in rows][:3]  # the first three, as a user might pick
        if not chosen:
            raise SystemExit(f"variable ${name}: its query found nothing; is there data?")
        self.values[name] = sql_value(chosen, multi=bool(variable.get("multi")))
        self.shown_values[name] = " + ".join(chosen)

    def title(self, panel: dict) -> str:
        text = str(panel.get("title", ""))
        for name, shown in self.shown_values.items():
            text = text.replace(f"${name}", shown)
        return text

    def series(self, panel: dict) -> list[Series]:
        from tests.monitoring.queries import expand_promql

        found: list[Series] = []
        for target in panel.get("targets", []):
            if self.kind(panel) == "prometheus":
                expr = expand_promql(target["expr"], self.values)
                for result in self.sources.promql(expr, self.start, self.end, self.step):
                    times = [datetime.fromtimestamp(float(t), UTC) for t, _ in result["values"]]
                    values = [_number(v) for _, v in result["values"]]
                    name = _legend(target.get("legendFormat"), result["metric"])
                    found.append(Series(name, times, values))
            else:
                names, rows = self.table(panel, target)
                found += _sql_series(names, rows)
        return found

    def table(self, panel: dict, target: dict) -> tuple[list[str], list[tuple]]:
        from tests.monitoring.queries import expand_sql

        interval = self.values["__interval"]
        sql = expand_sql(
            target["rawSql"], start=self.start, end=self.end, values=self.values, interval=interval
        )
        return self.sources.sql(sql)


def _number(text: str) -> float | None:
    value = float(text)
    return None if value != value else value  # NaN: no value


def _sql_series(names: list[str], rows: list[tuple]) -> list[Series]:
    """Grafana's reading of a SQL result: a time column, an optional metric, value columns."""
    if "time" not in names:  # a stat over the whole range: one row of named values
        return [
            Series(n, [], [_float(v)]) for n, v in zip(names, rows[0] if rows else [], strict=False)
        ]
    at = names.index("time")
    label = names.index("metric") if "metric" in names else None
    by_name: dict[str, Series] = {}
    for row in rows:
        moment = row[at]
        if not isinstance(moment, datetime):
            moment = datetime.fromtimestamp(float(moment), UTC)
        for index, name in enumerate(names):
            if index in (at, label):
                continue
            key = str(row[label]) if label is not None else name
            series = by_name.setdefault(key, Series(key, [], []))
            series.times.append(moment)
            series.values.append(_float(row[index]))
    return list(by_name.values())


def _float(value: object) -> float | None:
    try:
        return None if value is None else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


# --- drawing ------------------------------------------------------------------------------

BACKGROUND, PANEL, TEXT, GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9"]
NAMED = {"green": "#73bf69", "red": "#f2495c", "yellow": "#fade2a", "blue": "#8ab8ff"}
NAMED |= {"orange": "#ff9830", "purple": "#b877d9", "text": TEXT}
INCH_PER_COLUMN, INCH_PER_ROW = 0.75, 0.42


def _color(name: str | None) -> str:
    return NAMED.get(name or "", name or TEXT)


def _unit(panel: dict) -> str:
    return str(panel.get("fieldConfig", {}).get("defaults", {}).get("unit", ""))


def _format(value: float | None, unit: str) -> str:
    if value is None:
        return "No data"
    if unit == "percentunit":
        return f"{value * 100:.2f}%"
    if unit == "percent":
        return f"{value:.1f}%"
    if unit == "s":
        return f"{value:.3g} s"
    if unit.startswith("suffix:"):
        return f"{value:.4g} {unit.partition(':')[2].strip()}"
    return f"{value:.4g}" if abs(value) < 10_000 else f"{value:,.0f}"


def _threshold_color(panel: dict, value: float | None) -> str:
    steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps")
    color = "green"
    for step in steps or []:
        if step.get("value") is None or (value is not None and value >= step["value"]):
            color = step.get("color", color)
    return _color(color)


def _style(ax, title: str) -> None:
    ax.set_facecolor(PANEL)
    ax.set_title(title, loc="left", color=TEXT, fontsize=9, fontweight="bold", pad=4)
    for spine in ax.spines.values():
        spine.set_visible(False)


def draw_timeseries(ax, panel: dict, series: list[Series]) -> None:
    import matplotlib.dates as mdates

    ax.tick_params(colors=TEXT, labelsize=7)
    ax.grid(color=GRID, linewidth=0.6)
    drawn = [s for s in series if any(v is not None for v in s.values)]
    for index, s in enumerate(drawn[:12]):
        ax.plot(s.times, s.values, color=PALETTE[index % len(PALETTE)], linewidth=1.2, label=s.name)
    custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
    if custom.get("thresholdsStyle", {}).get("mode", "off") != "off":
        steps = panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
        for step in steps:
            if step.get("value") is not None:
                ax.axhline(
                    step["value"], color=_color(step.get("color")), linestyle="--", linewidth=0.9
                )
    if not drawn:
        ax.text(0.5, 0.5, "No data", color=TEXT, ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))
    unit = _unit(panel)
    if unit:
        ax.set_ylabel(unit.replace("suffix: ", ""), color=TEXT, fontsize=7)
    if panel.get("options", {}).get("legend", {}).get("showLegend", True):
        ax.legend(
            fontsize=6, loc="upper left", frameon=False, labelcolor=TEXT, ncol=min(4, len(drawn))
        )


def draw_stat(ax, panel: dict, series: list[Series]) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    unit = _unit(panel)
    shown = series or [Series("", [], [None])]
    for index, s in enumerate(shown[:6]):
        x = (index + 0.5) / min(6, len(shown))
        value = s.last()
        ax.text(
            x,
            0.42,
            _format(value, unit),
            color=_threshold_color(panel, value),
            fontsize=18 if len(shown) < 4 else 12,
            fontweight="bold",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        if len(shown) > 1:
            ax.text(x, 0.82, s.name, color=TEXT, fontsize=7, ha="center", transform=ax.transAxes)


def draw_table(ax, names: list[str], rows: list[list[str]]) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if not rows:
        ax.text(0.5, 0.5, "No data", color=TEXT, ha="center", va="center", transform=ax.transAxes)
        return
    table = ax.table(
        cellText=rows,
        colLabels=names,
        loc="upper center",
        cellLoc="left",
        colLoc="left",
        bbox=[0, 0, 1, 1],
    )
    table.auto_set_font_size(False)
    table.set_fontsize(6.5)
    for (row, _), cell in table.get_celld().items():
        cell.set_edgecolor(GRID)
        cell.set_facecolor(PANEL if row else "#22252b")
        cell.get_text().set_color(TEXT)


def draw_state_timeline(ax, panel: dict, series: list[Series]) -> None:
    import matplotlib.dates as mdates

    mapped: dict[str, tuple[str, str]] = {}  # value -> (color, text), the panel's mappings
    for mapping in panel.get("fieldConfig", {}).get("defaults", {}).get("mappings", []):
        for value, shown in mapping.get("options", {}).items():
            mapped[value] = (_color(shown.get("color")), shown.get("text", value))
    ax.tick_params(colors=TEXT, labelsize=7)
    shown = series[:8]
    for index, s in enumerate(shown):
        row = len(shown) - 1 - index
        ends = [*s.times[1:], s.times[-1]] if s.times else []
        for start, end, value in zip(s.times, ends, s.values, strict=True):
            if value is None:
                continue
            color, _ = mapped.get(f"{value:g}", (PALETTE[0], ""))
            width = (end - start).total_seconds() / 86400
            ax.barh(row, width, left=start, height=0.8, color=color, alpha=0.85)
        last = s.last()
        text = mapped.get(f"{last:g}", ("", ""))[1] if last is not None else ""
        ax.text(
            0.005,
            row,
            f"{s.name}: {text}" if text else s.name,
            color="#111217",
            fontsize=7,
            va="center",
            transform=ax.get_yaxis_transform(),
        )
    ax.set_yticks([])
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))


def table_rows(board: Board, panel: dict) -> tuple[list[str], list[list[str]]]:
    target = panel["targets"][0]
    if board.kind(panel) == "prometheus":  # an instant table: labels and the value
        series = board.series(panel)
        labels = sorted({k for s in series for k in _labels(s.name)})
        rows = [
            [_labels(s.name).get(k, "") for k in labels] + [_format(s.last(), "")] for s in series
        ]
        return [*labels, "value"], rows[:10]
    names, rows = board.table(panel, target)
    return names, [[_cell(v) for v in row] for row in rows[:10]]


def _labels(name: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in name.split(", ") if "=" in part)


def _cell(value: object) -> str:
    if isinstance(value, datetime):
        return f"{value.astimezone(UTC):%H:%M:%S}"
    if isinstance(value, float):
        return f"{value:.1f}"
    return "" if value is None else str(value)


def render(board_file: Path, sources: Sources, minutes: float, out: Path) -> Path:
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    board_json = json.loads(board_file.read_text())
    end = datetime.now(UTC)
    board = Board(board_json, sources, end - timedelta(minutes=minutes), end)
    panels = board_json["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    figure = plt.figure(
        figsize=(24 * INCH_PER_COLUMN, rows * INCH_PER_ROW + 0.6), facecolor=BACKGROUND
    )
    height = rows * INCH_PER_ROW + 0.6
    top = 1 - 0.6 / height
    figure.text(
        0.01,
        1 - 0.3 / height,
        f"{board_json['title']}  ·  last {minutes:g} minutes, to {end:%Y-%m-%d %H:%M} UTC",
        color=TEXT,
        fontsize=12,
        va="center",
    )
    for panel in panels:
        grid = panel["gridPos"]
        left, width = grid["x"] / 24, grid["w"] / 24
        bottom = top - (grid["y"] + grid["h"]) / rows * top
        tall = grid["h"] / rows * top
        if panel["type"] == "row":
            figure.text(
                left + 0.005,
                bottom + tall / 2,
                panel.get("title", ""),
                color=TEXT,
                fontsize=11,
                fontweight="bold",
                va="center",
            )
            continue
        inner = 0.03 if panel["type"] in ("timeseries", "state-timeline") else 0.006
        ax = figure.add_axes([left + inner, bottom + 0.012, width - inner - 0.006, tall - 0.04])
        _style(ax, board.title(panel))
        kind = panel["type"]
        if kind == "timeseries":
            draw_timeseries(ax, panel, board.series(panel))
        elif kind == "stat":
            draw_stat(ax, panel, board.series(panel))
        elif kind == "table":
            draw_table(ax, *table_rows(board, panel))
        elif kind == "state-timeline":
            draw_state_timeline(ax, panel, board.series(panel))
        else:
            raise SystemExit(f"{board_file.name}: no drawing for panel type {kind!r}")
    out.mkdir(parents=True, exist_ok=True)
    target = out / (board_file.stem + ".png")
    figure.savefig(target, dpi=110, facecolor=BACKGROUND)
    plt.close(figure)
    return target


def main(argv: list[str] | None = None) -> int:
    import os

    sys.path.insert(0, str(ROOT))  # for tests.monitoring.queries, which expands the queries
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fill = sub.add_parser("backfill", help="produce readings of the past through Kafka")
    fill.add_argument("--minutes", type=float, default=60.0)
    fill.add_argument("--customers", type=int, default=20)
    fill.add_argument("--step", type=float, default=5.0, help="seconds between a customer's")
    fill.add_argument("--seed", type=int, default=2026)
    draw = sub.add_parser("render", help="draw each dashboard to OUT/<name>.png")
    draw.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboards")
    draw.add_argument("--minutes", type=float, default=60.0, help="the time range shown")
    draw.add_argument("--dashboard", action="append", help="only this one (file stem)")
    args = parser.parse_args(argv)
    if args.command == "backfill":
        return backfill(args.minutes, args.customers, args.step, args.seed)
    sources = Sources(os.environ.get("PROMETHEUS_URL"), os.environ.get("DATABASE_URL"))
    for board_file in sorted(DASHBOARDS.glob("*.json")):
        if args.dashboard and board_file.stem not in args.dashboard:
            continue
        text = board_file.read_text()
        if '"prometheus"' in text and not sources.prometheus_url:
            print(f"{board_file.name}: skipped, PROMETHEUS_URL is not set")
            continue
        print(f"{board_file.name} -> {render(board_file, sources, args.minutes, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
