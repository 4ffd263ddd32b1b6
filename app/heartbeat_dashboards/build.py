"""Write the pipeline's Grafana dashboards as JSON, from their definitions in this package.

    python grafana/build_dashboards.py           write the dashboards (and the chart's copies)
    python grafana/build_dashboards.py --check   exit 1 if a committed file is out of date

The Helm chart ships the same dashboards (``charts/heartbeat/dashboards/``) and the same
alert rules (``charts/heartbeat/files/heartbeat.rules.yaml``, rendered into its
PrometheusRule); this writes those copies too, so there is one source for each.

The output is deterministic (sorted keys, panel ids in layout order), so the committed
JSON changes only when a definition does; a test compares the two.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from heartbeat_dashboards import DASHBOARDS

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"
OUTPUT = GRAFANA / "dashboards"
CHART = REPO / "charts" / "heartbeat"
RULES = GRAFANA / "alerts" / "heartbeat.rules.yaml"


def to_json(dashboard: Any) -> dict[str, Any]:
    """The dashboard as plain JSON data, every panel numbered from 1 in layout order."""
    data: dict[str, Any] = json.loads(json.dumps(dashboard, cls=JSONEncoder))
    next_id = 1
    for panel in data.get("panels", []):
        for item in (panel, *panel.get("panels", [])):
            item["id"] = next_id
            next_id += 1
    return data


def render() -> dict[str, str]:
    """File name -> the text it should hold."""
    return {
        name: json.dumps(to_json(build().build()), indent=2, sort_keys=True) + "\n"
        for name, build in DASHBOARDS.items()
    }


def outputs(output: Path, chart: Path | None) -> dict[Path, str]:
    """Every file this script owns -> the text it should hold."""
    files = {output / name: text for name, text in render().items()}
    if chart is not None:
        files |= {chart / "dashboards" / name: text for name, text in render().items()}
        files[chart / "files" / RULES.name] = RULES.read_text()
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"default: {OUTPUT}")
    parser.add_argument("--no-chart", action="store_true", help="do not write the chart's copies")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs(args.output, None if args.no_chart else CHART).items():
        name = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    if stale:
        print(
            f"out of date: {', '.join(stale)}; run python grafana/build_dashboards.py",
            file=sys.stderr,
        )
        return 1
    return 0
