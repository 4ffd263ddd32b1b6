"""Statement and lock timeouts: a stuck write is cancelled and retried, never fatal."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import psycopg
import pytest

from heartbeat.errors import DatabaseUnavailable
from heartbeat.kafka import Partition
from heartbeat.store import Store
from heartbeat.validation import Reading

pytestmark = pytest.mark.integration

READING = Reading(1, datetime(2026, 1, 1, 11, 0, tzinfo=UTC), 70, None)


def test_a_write_behind_a_table_lock_times_out_as_unavailable_and_succeeds_after(database):
    with Store(database, connect_timeout=2, lock_timeout=1.0) as store:
        store.ping()
        with psycopg.connect(database) as holder:
            holder.execute("LOCK TABLE heartbeats IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailable, match="lock timeout"):
                store.write_batch("g", [READING], {Partition("t", 0): 1})
            waited = time.monotonic() - started
            print(f"write behind a lock cancelled after {waited:.2f}s (lock_timeout 1s)")
            assert 0.9 <= waited < 3.0
        # The lock is released with the holder's transaction.
        result = store.write_batch("g", [READING], {Partition("t", 0): 1})
        assert len(result.stored) == 1


def test_a_statement_running_past_the_statement_timeout_is_cancelled_as_unavailable(database):
    with Store(database, connect_timeout=2, statement_timeout=0.5) as store:
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="statement timeout"):
            store.query("SELECT pg_sleep(5)")
        assert time.monotonic() - started < 3.0
        assert store.query("SELECT 1 AS one") == [{"one": 1}]


def test_every_pooled_connection_carries_both_timeouts(database):
    with Store(database, max_size=2, statement_timeout=12.5, lock_timeout=3) as store:
        rows = store.query(
            "SELECT current_setting('statement_timeout') AS statement,"
            " current_setting('lock_timeout') AS lock"
        )
    assert rows == [{"statement": "12500ms", "lock": "3s"}]
