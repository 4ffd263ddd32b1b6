"""kubectl and helm in one namespace of the real node's cluster, and waits that say what they saw.

Every wait that runs out raises an AssertionError carrying `Kube.diagnostics()`: the pods, their
descriptions, the last lines of every container's log (and of its previous run) and the
namespace's events, so a failure on a busy machine can be read without rerunning it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.support.polling import wait_for

Object = dict[str, Any]

LOG_LINES = 40
EVENT_LINES = 60


class CommandError(AssertionError):
    """kubectl or helm failed; the message carries what it printed."""


@dataclass(frozen=True)
class Kube:
    kubectl_argv: Sequence[str]
    helm_argv: Sequence[str]
    namespace: str
    helm_env: Mapping[str, str] = field(default_factory=dict)

    def kubectl(
        self, *args: str, stdin: str | None = None, timeout: float = 120.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [*self.kubectl_argv, "--namespace", self.namespace, *args]
        return _run(argv, stdin=stdin, timeout=timeout, check=check)

    def helm(
        self, *args: str, timeout: float = 900.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [*self.helm_argv, "--namespace", self.namespace, *args]
        return _run(argv, timeout=timeout, check=check, env=self.helm_env)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def items(self, *args: str) -> list[Object]:
        items: list[Object] = self.get(*args)["items"]
        return items

    def apply(self, manifest: Object) -> None:
        self.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))

    def exec(self, target: str, *command: str, timeout: float = 120.0) -> str:
        return self.kubectl("exec", target, "--", *command, timeout=timeout).stdout

    def logs(self, target: str) -> str:
        return self.kubectl("logs", target, "--all-containers", check=False).stdout

    def diagnostics(self) -> str:
        """What the namespace looks like now, bounded, for a failure message."""
        parts = [
            self._section("pods", "get", "pods,jobs,deployments,services", "-o", "wide"),
        ]
        for pod in self.items("pods"):
            name = pod["metadata"]["name"]
            parts.append(self._section(f"describe pod {name}", "describe", "pod", name))
            for status in pod.get("status", {}).get("containerStatuses", []):
                container = status["name"]
                tail = f"--tail={LOG_LINES}"
                parts.append(
                    self._section(f"logs {name}/{container}", "logs", name, "-c", container, tail)
                )
                if status.get("restartCount", 0):
                    parts.append(
                        self._section(
                            f"previous logs {name}/{container}",
                            "logs",
                            name,
                            "-c",
                            container,
                            "--previous",
                            tail,
                        )
                    )
        events = self._section("events", "get", "events", "--sort-by=.lastTimestamp")
        parts.append("\n".join(events.splitlines()[-EVENT_LINES:]))
        return "\n".join(parts)

    def _section(self, title: str, *args: str) -> str:
        try:
            done = self.kubectl(*args, check=False, timeout=60.0)
        except subprocess.TimeoutExpired:
            return f"--- {title}: kubectl timed out"
        return f"--- {title}\n{done.stdout}{done.stderr}"


def _run(
    argv: list[str],
    *,
    stdin: str | None = None,
    timeout: float,
    check: bool,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env} if env else None,
    )
    if check and done.returncode != 0:
        shown = " ".join(argv[1:])
        raise CommandError(f"{shown} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def wait_until(
    kube: Kube,
    what: str,
    check: Callable[[], bool],
    seconds: float,
    interval: float = 2.0,
    explain: Callable[[], str] | None = None,
) -> float:
    """Calls `check` until it holds (a client that does not answer counts as "not yet");
    returns the seconds it took, or fails with the cluster's diagnostics."""
    started = time.monotonic()
    try:
        wait_for(check, seconds, what, interval, retrying=(CommandError,))
    except AssertionError as exc:
        detail = explain() if explain is not None else ""
        raise AssertionError(f"{exc}. {detail}\n{kube.diagnostics()}") from None
    return time.monotonic() - started


def condition(obj: Object, kind: str) -> str | None:
    """The status ("True", "False", "Unknown") of a condition, None when there is none."""
    for c in obj.get("status", {}).get("conditions", []):
        if c["type"] == kind:
            return str(c["status"])
    return None


def is_ready(pod: Object) -> bool:
    return pod["status"].get("phase") == "Running" and condition(pod, "Ready") == "True"
