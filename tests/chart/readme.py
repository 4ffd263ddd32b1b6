"""Examples read out of the chart README, so that the tests check what a user copies."""

from __future__ import annotations

import re
from typing import Any

import yaml

from .helm import CHART

README = CHART / "README.md"
MANAGED = "## Managed Kafka and PostgreSQL"


def _section(heading: str) -> str:
    return README.read_text().split(heading, 1)[1].split("\n## ")[0]


def readme_managed_example() -> dict[str, Any]:
    """The values of the chart README's managed Kafka and PostgreSQL example."""
    section = _section(MANAGED)
    (block,) = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    values: dict[str, Any] = yaml.safe_load(block)
    return values


def readme_example_secrets() -> dict[str, set[str]]:
    """Secret name -> keys, as the README's example creates them with kubectl."""
    section = _section(MANAGED)
    secrets: dict[str, set[str]] = {}
    for name, key in re.findall(r"create secret generic (\S+) --from-file=([^=\s]+)=\S+", section):
        secrets.setdefault(name, set()).add(key)
    return secrets
