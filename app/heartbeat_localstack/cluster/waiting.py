"""Waiting for a cluster component to come up, failing fast when any of them exits."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from heartbeat_localstack.process import DetachedProcess, tail

from .exceptions import ComponentStartError

logger = logging.getLogger(__name__)


class HasLogs(Protocol):
    def log(self, component: str) -> Path: ...


def wait_for_component(
    name: str,
    what: str,
    check: Callable[[], bool],
    procs: Mapping[str, DetachedProcess],
    layout: HasLogs,
    timeout: float,
    *,
    interval: float = 0.5,
) -> None:
    """Poll ``check`` until it holds; raise ``ComponentStartError`` when a component exits
    or ``timeout`` seconds pass (a check that raises OSError or times out counts as not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        for other, proc in procs.items():
            if proc.pid_file.exists() and not proc.is_running():
                raise ComponentStartError(
                    other, "the process exited", layout.log(other), tail(layout.log(other))
                )
        try:
            if check():
                logger.debug("%s: %s reached", name, what)
                return
        except (OSError, subprocess.TimeoutExpired) as exc:
            logger.debug("%s: %s not yet: %s", name, what, exc)
        if time.monotonic() > deadline:
            raise ComponentStartError(
                name,
                f"{what} not reached within {timeout:.0f} s",
                layout.log(name),
                tail(layout.log(name)),
            )
        time.sleep(interval)
