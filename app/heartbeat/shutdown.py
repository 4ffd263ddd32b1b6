"""A stop that cannot hang: past its budget, the process exits anyway.

A long-lived process stops on SIGTERM by finishing or abandoning its batch and
leaving the Kafka group. Most of that is bounded by timeouts of its own, but a
PostgreSQL server that accepts connections and then answers nothing, or a
group coordinator in the middle of a rebalance, can hold a call for longer than
Kubernetes waits before it kills the pod. ``ShutdownDeadline`` is the backstop:
armed when the stop is requested, it ends the process with exit code 0 once
``seconds`` have passed. Nothing is lost by that: a batch not yet committed to
PostgreSQL is read again by whoever owns its partitions next.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)


class ShutdownDeadline:
    """Calls ``exit(0)`` if the process is still running ``seconds`` after ``arm()``."""

    def __init__(self, seconds: float, *, exit: Callable[[int], object] = os._exit) -> None:
        self.seconds = seconds
        self._exit = exit
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def arm(self) -> None:
        """Start counting (once; later calls keep the first deadline)."""
        with self._lock:
            if self._timer is not None:
                return
            self._timer = threading.Timer(self.seconds, self._expire)
            self._timer.name = "shutdown-deadline"
            self._timer.daemon = True
            self._timer.start()

    def disarm(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()

    def _expire(self) -> None:
        logger.warning(
            "still stopping after %gs (SHUTDOWN_TIMEOUT_SECONDS); exiting now, "
            "an uncommitted batch is read again by the partitions' next owner",
            self.seconds,
        )
        for handler in logging.getLogger().handlers:
            with contextlib.suppress(OSError, ValueError):  # a closed stream: nothing to flush
                handler.flush()
        self._exit(0)
