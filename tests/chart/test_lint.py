"""`helm lint` accepts the charts, strictly and with every ci/ scenario."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helm import CHART, CHARTS, Helm

pytestmark = pytest.mark.chart


def test_chart_passes_helm_lint(helm: Helm) -> None:
    result = helm.lint(CHART)
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_passes_strict_helm_lint(helm: Helm) -> None:
    result = helm.lint(CHART, "--strict")
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_passes_strict_helm_lint_with_each_ci_scenario(helm: Helm, scenario: Path) -> None:
    result = helm.lint(CHART, "--strict", "--values", str(scenario))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dev_dependencies_chart_passes_strict_helm_lint(helm: Helm) -> None:
    result = helm.lint(CHARTS / "dev-deps", "--strict")
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_fails_on_values_the_schema_rejects(helm: Helm) -> None:
    result = helm.lint(CHART, "--set", "kafka.securityProtocol=TLS")
    assert result.returncode != 0
    assert "securityProtocol" in result.stdout + result.stderr
