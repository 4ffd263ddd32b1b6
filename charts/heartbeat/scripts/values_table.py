"""The values table of the chart README, from the helm-docs style comments of values.yaml.

A value is documented by a comment starting with ``# --`` right above it (continued by the
``#`` lines that follow); a documented map is one row, and an undocumented map's entries are
rows of their own. A value with no such comment is an error, so every value has a row.

    python charts/heartbeat/scripts/values_table.py          # rewrite the README's table
    python charts/heartbeat/scripts/values_table.py --check  # exit 1 when it is stale
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1]
VALUES = CHART / "values.yaml"
README = CHART / "README.md"
START = "<!-- values:start -->"
END = "<!-- values:end -->"

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?:\s|$)")
_DOC = re.compile(r"^(?P<indent> *)# -- ?(?P<text>.*)$")
_MORE = re.compile(r"^(?P<indent> *)#(?: (?P<text>.*))?$")


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    description: str


class UndocumentedValue(Exception):
    """A value of values.yaml has no ``# --`` comment."""


def documented(text: str) -> dict[str, str]:
    """Dotted key -> description, for every key with a ``# --`` comment above it."""
    docs: dict[str, str] = {}
    path: list[tuple[int, str]] = []
    pending: list[str] | None = None
    for line in text.splitlines():
        doc = _DOC.match(line)
        if doc:
            pending = [doc.group("text").strip()]
            continue
        more = _MORE.match(line)
        if more:
            if pending is not None:
                pending.append((more.group("text") or "").strip())
            continue
        key = _KEY.match(line)
        if key:
            indent = len(key.group("indent"))
            path = [(i, k) for i, k in path if i < indent]
            path.append((indent, key.group("key")))
            if pending is not None:
                docs[".".join(k for _, k in path)] = " ".join(p for p in pending if p)
        pending = None
    return docs


def _type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if value is None:
        return "null"
    return "object"


def rows(text: str) -> list[Row]:
    """One row per documented value, in the order of values.yaml."""
    docs = documented(text)
    values = yaml.safe_load(text)
    found: list[Row] = []
    missing: list[str] = []

    def walk(prefix: str, node: Any) -> None:
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if dotted in docs:
                default = json.dumps(value, separators=(",", ":"))
                found.append(Row(dotted, _type(value), default, docs[dotted]))
            elif isinstance(value, dict) and value:
                walk(f"{dotted}.", value)
            else:
                missing.append(dotted)

    walk("", values)
    if missing:
        raise UndocumentedValue(f"values without a `# --` comment: {', '.join(missing)}")
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(text: str) -> str:
    lines = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for row in rows(text):
        lines.append(
            f"| `{row.key}` | {row.type} | `{_cell(row.default)}` | {_cell(row.description)} |"
        )
    return "\n".join(lines) + "\n"


def with_table(readme: str, values_text: str) -> str:
    """The README with its table between the markers replaced by the current one."""
    before, rest = readme.split(START, 1)
    _, after = rest.split(END, 1)
    return f"{before}{START}\n{table(values_text)}{END}{after}"


def main(argv: list[str]) -> int:
    readme = README.read_text()
    try:
        current = with_table(readme, VALUES.read_text())
    except UndocumentedValue as exc:
        print(f"values_table: {exc}", file=sys.stderr)
        return 2
    if "--check" in argv:
        if current != readme:
            print(f"{README} is stale: run python {Path(__file__).relative_to(CHART.parents[1])}")
            return 1
        return 0
    README.write_text(current)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
