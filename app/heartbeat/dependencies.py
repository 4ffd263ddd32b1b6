"""The dependencies of a process (Kafka, PostgreSQL): whether each answers, and retrying it.

One helper for the producer and the consumer alike: ``mark`` sets what ``/readyz`` says
of a dependency and the ``heartbeat_dependency_up`` gauge; ``retry`` runs an action until
it succeeds, with capped exponential backoff, counting each retry and logging a warning.
A dependency that has kept failing for ``LONG_RETRY_SECONDS`` is named with the
settings to check (``DATABASE_URL`` / ``PG*`` for PostgreSQL), since an outage that long
is as often a wrong address as a server that is down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from prometheus_client import Counter, Gauge

from heartbeat.errors import KafkaUnavailable
from heartbeat.retry import retry_transient
from heartbeat.server import Health
from heartbeat.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

LONG_RETRY_SECONDS = 30.0
# What to check when a dependency stays unreachable.
SETTINGS_TO_CHECK = {
    "kafka": "KAFKA_BOOTSTRAP_SERVERS and KAFKA_SECURITY_PROTOCOL",
    "postgres": "DATABASE_URL / PG*",
}


class DependencyMetrics(Protocol):
    dependency_up: Gauge
    retries: Counter


class Dependencies:
    """What a process knows of its dependencies, and how it waits for them."""

    def __init__(
        self,
        settings: Settings,
        health: Health,
        metrics: DependencyMetrics,
        stopping: threading.Event,
    ) -> None:
        self._initial = settings.retry_initial_seconds
        self._maximum = settings.retry_max_seconds
        self._health = health
        self._metrics = metrics
        self._stopping = stopping

    def mark(self, name: str, ok: bool, detail: str = "") -> None:
        """Record whether ``name`` answers (``progress`` and the like: readiness only)."""
        self._health.set(name, ok, detail)
        if name in SETTINGS_TO_CHECK:
            self._metrics.dependency_up.labels(name).set(1 if ok else 0)

    def ok(self, name: str) -> Callable[[], None]:
        return lambda: self.mark(name, True)

    def retry(
        self,
        dependency: str,
        action: Callable[[], T],
        *,
        sleep: Callable[[float], None] | None = None,
        failed: BaseException | None = None,
    ) -> T:
        """Run ``action`` until it succeeds, backing off on ``TransientError``; mark it ready.

        Gives up, re-raising the last error, only once a stop was requested. A
        ``KafkaUnavailable`` raised while retrying another dependency is reported
        as Kafka's (a write can fail on Kafka too, dead-lettering its conflicts).
        ``failed``, when given, is how a first attempt made elsewhere failed: it is
        reported and waited for as this one's first.
        """
        since = time.monotonic()
        first = [failed] if failed is not None else []

        def attempt() -> T:
            if first:
                raise first.pop()
            return action()

        def on_retry(error: BaseException, attempt: int, delay: float) -> None:
            failed = "kafka" if isinstance(error, KafkaUnavailable) else dependency
            self.mark(failed, False, str(error))
            self._metrics.retries.labels(failed).inc()
            waited = time.monotonic() - since
            hint = ""
            if waited >= LONG_RETRY_SECONDS and failed in SETTINGS_TO_CHECK:
                hint = f"; failing for {waited:.0f}s: check {SETTINGS_TO_CHECK[failed]}"
            logger.warning(
                "%s unavailable (%s); retry %d in %.1fs%s", failed, error, attempt, delay, hint
            )

        result = retry_transient(
            attempt,
            initial=self._initial,
            maximum=self._maximum,
            stopping=self._stopping,
            on_retry=on_retry,
            sleep=sleep,
        )
        self.mark(dependency, True)
        return result
