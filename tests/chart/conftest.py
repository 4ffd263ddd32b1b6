"""Fixtures of the chart tests: a helm binary, and the chart rendered once per scenario."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest

from .helm import CHART, CI_VALUES, Helm, find_helm


@pytest.fixture(scope="session")
def helm() -> Helm:
    binary = find_helm()
    if binary is None:
        pytest.skip(
            "no helm binary: set HELM, run `make cluster` (.stack/bin/helm), or put helm on PATH"
        )
    return Helm(binary)


@pytest.fixture(scope="session")
def rendered(helm: Helm) -> Any:
    """``rendered(values_file)``: the manifests of one ci/ scenario, rendered once per session."""

    @cache
    def render(values: Path) -> tuple[dict[str, Any], ...]:
        return tuple(helm.render(CHART, [values]))

    return render


@pytest.fixture(scope="session")
def defaults(rendered: Any) -> tuple[dict[str, Any], ...]:
    """The manifests of a plain `helm install` with the chart's own values."""
    manifests: tuple[dict[str, Any], ...] = rendered(CHART / "ci" / "default-values.yaml")
    return manifests


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test taking ``scenario`` runs once for every ci/*-values.yaml."""
    if "scenario" in metafunc.fixturenames:
        metafunc.parametrize(
            "scenario", CI_VALUES, ids=[p.name.removesuffix("-values.yaml") for p in CI_VALUES]
        )
