"""`helm lint` accepts the charts, strictly, with every ci/ scenario and the README's example."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from .helm import CHART, CHARTS, KUBE_VERSION, Helm
from .readme import readme_managed_example

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


def test_readmes_managed_example_passes_strict_helm_lint(helm: Helm, tmp_path: Path) -> None:
    values = tmp_path / "managed-values.yaml"
    values.write_text(yaml.safe_dump(readme_managed_example()))
    result = helm.lint(CHART, "--strict", "--values", str(values))
    assert result.returncode == 0, result.stdout + result.stderr


def test_readmes_managed_example_renders_valid_kubernetes_manifests(
    helm: Helm, tmp_path: Path
) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed"
    )
    values = tmp_path / "managed-values.yaml"
    values.write_text(yaml.safe_dump(readme_managed_example()))
    for manifest in helm.render(CHART, [values]):
        kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
