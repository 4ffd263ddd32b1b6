"""Running the ``helm`` binary against the charts in ``charts/``.

Which helm: ``$HELM``, then ``.stack/bin/helm`` (from ``make cluster``), then the cached
build under ``${XDG_CACHE_HOME:-~/.cache}/heartbeat/k8s-*/bin/helm``, then ``PATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "charts"
CHART = CHARTS / "heartbeat"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "heartbeat"
NAMESPACE = "pipeline"
# The Kubernetes version rendering assumes: helm's own default depends on how helm was built.
KUBE_VERSION = "1.34.0"


def find_helm() -> Path | None:
    """The helm binary to use, or None when there is none."""
    if os.environ.get("HELM"):
        given = Path(os.environ["HELM"])
        return given if given.is_file() else None
    candidates = [ROOT / ".stack" / "bin" / "helm"]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "heartbeat"
    candidates += sorted(cache.glob("k8s-*/bin/helm"), reverse=True)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("helm")
    return Path(found) if found else None


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Helm:
    binary: Path

    def run(self, *args: str, timeout: float = 120) -> Result:
        # HELM_* caches in a throwaway place: the tests never touch the user's repositories.
        env = {
            **os.environ,
            "HELM_CACHE_HOME": "/tmp/heartbeat-helm-tests/cache",
            "HELM_CONFIG_HOME": "/tmp/heartbeat-helm-tests/config",
            "HELM_DATA_HOME": "/tmp/heartbeat-helm-tests/data",
        }
        done = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, timeout=timeout, env=env
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def lint(self, chart: Path = CHART, *flags: str) -> Result:
        return self.run("lint", str(chart), "--kube-version", KUBE_VERSION, *flags)

    def template(
        self,
        chart: Path = CHART,
        values: Iterable[Path] = (),
        sets: Mapping[str, Any] | None = None,
    ) -> Result:
        args = ["template", RELEASE, str(chart), "--namespace", NAMESPACE, "--include-crds"]
        args += ["--kube-version", KUBE_VERSION]
        for path in values:
            args += ["--values", str(path)]
        for key, value in (sets or {}).items():
            args += ["--set-json", f"{key}={json.dumps(value)}"]
        return self.run(*args)

    def render(
        self,
        chart: Path = CHART,
        values: Iterable[Path] = (),
        sets: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Every rendered manifest, parsed; fails with helm's message when rendering fails."""
        result = self.template(chart, values, sets)
        if result.returncode != 0:
            raise RenderError(result.stderr.strip())
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


class RenderError(Exception):
    """helm template refused the values."""


def scenario_id(path: Path) -> str:
    return path.name.removesuffix("-values.yaml")
