"""What the chart promises about every pod it runs, checked on objects read from the server.

Each function returns a list of problems (empty when all is well), so that one assertion can
report every pod that falls short at once.
"""

from __future__ import annotations

from typing import Any

import yaml

from tests.chart.helm import CHART

VALUES = yaml.safe_load((CHART / "values.yaml").read_text())

POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
PROBE_PATHS = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
PROBE_VALUES = {"livenessProbe": "liveness", "readinessProbe": "readiness"}


def security_problems(where: str, pod_spec: dict[str, Any]) -> list[str]:
    """The pod and each of its containers run as non-root, read-only, with nothing extra."""
    problems = []
    pod_context = pod_spec.get("securityContext", {})
    for key, expected in POD_SECURITY.items():
        if pod_context.get(key) != expected:
            problems.append(f"{where}: pod securityContext.{key} is {pod_context.get(key)!r}")
    for c in pod_spec.get("initContainers", []) + pod_spec["containers"]:
        context = c.get("securityContext", {})
        for key, expected in CONTAINER_SECURITY.items():
            if context.get(key) != expected:
                problems.append(
                    f"{where} container {c['name']}: securityContext.{key} is {context.get(key)!r}"
                )
    return problems


def probe_problems(where: str, pod_spec: dict[str, Any]) -> list[str]:
    """Each container probes /healthz and /readyz on its metrics port, timed as values.yaml says."""
    problems = []
    for c in pod_spec["containers"]:
        ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        if ports.get("metrics") != VALUES["config"]["metricsPort"]:
            problems.append(f"{where} container {c['name']}: metrics port is {ports}")
        for probe, path in PROBE_PATHS.items():
            found = c.get(probe)
            if not found:
                problems.append(f"{where} container {c['name']}: no {probe}")
                continue
            expected = {"path": path, "port": "metrics", "scheme": "HTTP"}
            if found.get("httpGet") != expected:
                problems.append(f"{where} container {c['name']}: {probe} {found.get('httpGet')}")
            timing = VALUES["probes"][PROBE_VALUES[probe]]
            if {key: found.get(key) for key in timing} != timing:
                problems.append(f"{where} container {c['name']}: {probe} timing {found}")
    return problems
