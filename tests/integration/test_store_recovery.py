"""After a PostgreSQL outage the store is writing again within seconds, not a minute."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from heartbeat.errors import DatabaseUnavailable
from heartbeat.kafka import Partition
from heartbeat.store import Store
from heartbeat.validation import Reading

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_SECONDS = 40
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Writer:
    """Writes one reading after another, retrying every half second, like a consumer."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.stop = threading.Event()
        self.successes: list[float] = []
        self.failures: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            reading = Reading(1, T0 + timedelta(seconds=n), 70, None)
            try:
                self.store.write_batch("g", [reading], {Partition("t", 0): n + 1})
            except DatabaseUnavailable as exc:
                self.failures.append(str(exc))
                self.stop.wait(0.5)
                continue
            self.successes.append(time.monotonic())
            n += 1
            self.stop.wait(0.1)

    def first_success_after(self, instant: float, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            later = [t for t in self.successes if t >= instant]
            if later:
                return later[0]
            time.sleep(0.05)
        return None


def test_writes_resume_within_seconds_after_postgres_is_back(postgres_service, database):
    with Store(database, max_size=2, connect_timeout=5) as store:
        writer = Writer(store)
        writer.thread.start()
        try:
            assert writer.first_success_after(0.0, 10) is not None
            postgres_service.stop()
            stopped = time.monotonic()
            time.sleep(OUTAGE_SECONDS)
            assert writer.failures, "writes kept succeeding with PostgreSQL stopped"
            before_start = time.monotonic()
            postgres_service.start()
            started = time.monotonic()
            first = writer.first_success_after(started, 60)
        finally:
            writer.stop.set()
            writer.thread.join(30)
    assert first is not None, "no write succeeded within 60 s of PostgreSQL being back"
    print(
        f"PostgreSQL down {started - stopped:.1f}s ({len(writer.failures)} failed writes);"
        f" start() took {started - before_start:.1f}s;"
        f" first write {first - started:.2f}s after PostgreSQL was back"
    )
    assert first - started < 10
