"""Everything that talks to PostgreSQL; the only module that imports psycopg.

``Store.write_rows`` is the heart of exactly-once delivery, the transaction the consumer
runs for each batch: the batch's rows (``reading_rows.pack_rows``) are binary-COPYed
into a per-connection staging table, moved into ``heartbeats`` with ``INSERT ... ON
CONFLICT DO NOTHING`` (so duplicates, within the batch or from any earlier delivery, are
skipped) and counted in one aggregate row, and the consumed offsets are upserted into
``consumer_offsets``, all in one transaction. ``Store.write_batch`` packs a list of
``Reading`` and runs it, answering the stored readings' instants.
Offsets only move forward, so a late write from a consumer that lost its
partitions can never rewind the position another consumer already stored.

A reading whose (customer, instant) is already stored, or staged earlier in the
same batch, is not inserted. Only when fewer rows went in than were staged does
the store look why, with one join of the staging table against ``heartbeats``:
the same heart rate is a duplicate (counted, silent), another one is a
``Conflict``, dead-lettered. Refused messages (``rejected``) and conflicts go to
``dead_letters`` in the same transaction, so each is accounted for exactly once.
The same statement that inserts the readings moves each customer's last-seen time
on and marks the minutes they fall in for the rollups (``heartbeat.reading_rows``).

Maintenance (``heartbeat.maintain``) runs its statements through ``execute`` under
``advisory_lock``; the statements themselves are plain text from
``heartbeat.partition_sql``.

Every connection has a statement and a lock timeout: a write stuck behind a lock
or a hung server is cancelled and reported as ``DatabaseUnavailable``, which the
consumer retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from heartbeat import dead_letter_rows, reading_rows
from heartbeat.dead_letter_rows import DeadLetter, Source, from_record
from heartbeat.errors import DatabaseUnavailable, SchemaNotMigrated, SettingsError
from heartbeat.security_hints import postgres_hint, with_hint
from heartbeat.types import Partition, Record
from heartbeat.validation import (
    VALID_MAX_BPM,
    Reading,
    Rejection,
    conflicting_reading,
    to_micros,
)

logger = logging.getLogger(__name__)

# JIT compilation costs hundreds of milliseconds on the large estimates of queries over
# partitions and rollups, which then run in tens: none of ours gains from it.
SET_TIMEOUTS = """
SELECT set_config('statement_timeout', %(statement)s, false),
       set_config('lock_timeout', %(lock)s, false),
       set_config('jit', 'off', false)
"""
SET_LOCAL_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', %(lock)s, true)"
TRY_ADVISORY_LOCK = "SELECT pg_try_advisory_lock(%(key)s)"
ADVISORY_UNLOCK = "SELECT pg_advisory_unlock(%(key)s)"
UPSERT_OFFSETS = """
INSERT INTO consumer_offsets AS o (consumer_group, topic, partition, next_offset)
SELECT %(group)s, t, p, n
FROM unnest(%(topics)s::text[], %(partitions)s::int[], %(offsets)s::bigint[]) AS u(t, p, n)
ON CONFLICT (consumer_group, topic, partition) DO UPDATE
    SET next_offset = EXCLUDED.next_offset, updated_at = now()
    WHERE o.next_offset < EXCLUDED.next_offset
"""
SELECT_OFFSETS = """
SELECT topic, partition, next_offset FROM consumer_offsets
WHERE consumer_group = %(group)s AND topic = ANY(%(topics)s::text[])
"""
# Errors that mean "the server or the connection is gone, or a statement was
# cancelled by statement_timeout or lock_timeout", worth retrying. The two
# cancellations are OperationalErrors already; they are named so it stays so.
_TRANSIENT = (
    psycopg.errors.QueryCanceled,
    psycopg.errors.LockNotAvailable,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    PoolTimeout,
)

# psycopg_pool replaces a broken connection in the background, waiting 1 s, 2 s,
# 4 s ... between attempts, doubling without a cap, for ``reconnect_timeout``
# (5 minutes by default): after a 40 s outage its next attempt came some 20 s
# after PostgreSQL was back, stacked on the caller's own retry. Its only public
# bound is ``reconnect_timeout``: after it the attempt gives up and the next
# request for a connection starts a new one at once, so the gap between two
# attempts stays under half of this.
RECONNECT_CYCLE_SECONDS = 4.0


@dataclass(frozen=True, slots=True)
class Conflict:
    """A reading for an instant already stored with another heart rate."""

    index: int  # into the ``readings`` given to ``write_rows`` or ``write_batch``
    reading: Reading
    stored_heart_rate: int
    rejection: Rejection  # reason ``conflicting_reading``, naming the stored value


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What ``write_batch`` stored: the readings' instants, in the order staged."""

    stored: list[datetime]
    low: int  # stored readings flagged low
    high: int  # ... and high
    duplicates: int  # exact duplicates only: same customer, instant and heart rate
    conflicts: list[Conflict] = field(default_factory=list)
    dead_letters: int = 0  # rows newly added to dead_letters (rejected and conflicts)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one batch's transaction stored, in counts (``write_rows``)."""

    staged: int
    stored: int
    low: int  # stored readings flagged low
    high: int  # ... and high
    duplicates: int  # exact duplicates only: same customer, instant and heart rate
    conflicts: list[Conflict] = field(default_factory=list)
    dead_letters: int = 0  # rows newly added to dead_letters (rejected and conflicts)
    # The stored readings' instants, only when some but not all staged ones were stored;
    # otherwise (None) they are exactly the instants the caller staged, or none.
    stored_instants: list[datetime] | None = None


class StagedReadings(Protocol):
    """A batch's valid readings as the hot path holds them (``heartbeat.batch.Columns``)."""

    def __len__(self) -> int: ...
    def reading(self, index: int) -> Reading: ...


@dataclass(frozen=True, slots=True)
class _Listed:
    """A list of ``Reading`` as ``write_rows`` asks for a conflicting one."""

    readings: Sequence[Reading]

    def __len__(self) -> int:
        return len(self.readings)

    def reading(self, index: int) -> Reading:
        return self.readings[index]


@dataclass(frozen=True, slots=True)
class DeadLetterCount:
    reason: str
    total: int
    redriven: int


def _finish_batch(
    cur: psycopg.Cursor[Any],
    group: str,
    letters: Sequence[DeadLetter],
    offsets: Mapping[Partition, int],
) -> int:
    """A batch's dead letters and next offsets, in its transaction; dead letters added."""
    added = 0
    if letters:
        cur.execute(dead_letter_rows.INSERT, dead_letter_rows.insert_params(group, letters))
        added = cur.rowcount
    if offsets:
        items = sorted(offsets.items())
        cur.execute(
            UPSERT_OFFSETS,
            {
                "group": group,
                "topics": [p.topic for p, _ in items],
                "partitions": [p.partition for p, _ in items],
                "offsets": [o for _, o in items],
            },
        )
    return added


def connect(
    conninfo: str, *, autocommit: bool = False, connect_timeout: float = 5.0
) -> psycopg.Connection[Any]:
    """One plain connection (migrations, admin commands); libpq's PG* variables fill the gaps."""
    try:
        return psycopg.connect(
            conninfo, autocommit=autocommit, connect_timeout=max(1, round(connect_timeout))
        )
    except _TRANSIENT as exc:
        raise DatabaseUnavailable(_describe(exc)) from exc


def migration_backend(conninfo: str, *, connect_timeout: float = 5.0) -> Any:
    """yoyo's PostgreSQL (psycopg 3) backend for ``conninfo``; libpq's PG* variables fill the gaps.

    Every conninfo parameter travels as a query argument of yoyo's URI, which yoyo
    hands to ``psycopg.connect`` unchanged (so socket folders and several hosts work).
    """
    from urllib.parse import urlencode

    from yoyo import get_backend

    params = {key: str(value) for key, value in conninfo_to_dict(conninfo).items()}
    params.setdefault("connect_timeout", str(max(1, round(connect_timeout))))
    try:
        return get_backend(f"postgresql+psycopg:///?{urlencode(params)}")
    except _TRANSIENT as exc:
        raise DatabaseUnavailable(_describe(exc)) from exc


def check_conninfo(conninfo: str) -> None:
    """Raise ``SettingsError`` naming DATABASE_URL if it is not a libpq conninfo or URI."""
    try:
        conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        # psycopg's message quotes part of the string, which may hold the password.
        raise SettingsError(
            "invalid settings:\n  DATABASE_URL: not a libpq connection string or URI"
        ) from exc


def _milliseconds(seconds: float) -> str:
    """A PostgreSQL duration setting; at least 1 ms, since 0 would mean no timeout."""
    return f"{max(1, round(seconds * 1000))}ms"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    # A TLS or login refusal also says which part of DATABASE_URL (or PG*) to check.
    return with_hint(first, postgres_hint(str(exc)))


class Store:
    """A small connection pool and the pipeline's reads and writes.

    ``statement_timeout`` and ``lock_timeout`` (seconds) are set on every pooled
    connection; a statement they cancel raises ``DatabaseUnavailable``.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        max_size: int = 2,
        connect_timeout: float = 5.0,
        statement_timeout: float = 30.0,
        lock_timeout: float = 10.0,
    ) -> None:
        self._timeouts = {
            "statement": _milliseconds(statement_timeout),
            "lock": _milliseconds(lock_timeout),
        }
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max(1, max_size),
            kwargs={
                "connect_timeout": max(1, round(connect_timeout)),
                # Notice a peer that vanished (network partition, failover without a
                # reset) within about a minute instead of TCP's ~15 minutes.
                "keepalives": 1,
                "keepalives_idle": 30,
                "keepalives_interval": 10,
                "keepalives_count": 3,
                "tcp_user_timeout": 60_000,
            },
            configure=self._configure,
            check=ConnectionPool.check_connection,
            timeout=connect_timeout,
            reconnect_timeout=RECONNECT_CYCLE_SECONDS,
            open=False,
            name="heartbeat",
        )

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(reading_rows.STAGING_DDL)
        conn.execute(SET_TIMEOUTS, self._timeouts)
        conn.commit()

    def open(self) -> None:
        self._pool.open(wait=False)

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> Store:
        self.open()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._pool.connection() as conn, conn.transaction():
                yield conn
        except _TRANSIENT as exc:
            raise DatabaseUnavailable(_describe(exc)) from exc
        except psycopg.errors.UndefinedTable as exc:
            raise SchemaNotMigrated(f"{_describe(exc)}; run `heartbeat migrate` first") from exc
        except psycopg.errors.CheckViolation as exc:
            # A row routed to a default partition while maintenance attached the
            # partition it belongs to: the same write, tried again, goes there.
            if "violates partition constraint" in str(exc):
                raise DatabaseUnavailable(_describe(exc)) from exc
            raise

    def ping(self) -> None:
        with self._transaction() as conn:
            conn.execute("SELECT 1")

    def load_offsets(self, group: str, topics: Sequence[str]) -> dict[Partition, int]:
        with self._transaction() as conn:
            rows = conn.execute(SELECT_OFFSETS, {"group": group, "topics": list(topics)}).fetchall()
        return {Partition(topic, partition): offset for topic, partition, offset in rows}

    def write_batch(
        self,
        group: str,
        readings: Sequence[Reading],
        offsets: Mapping[Partition, int],
        *,
        sources: Sequence[Record] | None = None,
        rejected: Sequence[tuple[Record, Rejection]] = (),
        on_conflicts: Callable[[list[Conflict]], None] | None = None,
    ) -> WriteResult:
        """``write_rows`` for a list of ``Reading``, answering the stored ones' instants.

        ``sources[i]``, if given, is the record ``readings[i]`` came from (``write_rows``'
        ``source``). A reading's anomaly is stored as its heart rate's
        (``validation.classify``), as the consumer's are.
        """
        if sources is not None and len(sources) != len(readings):
            raise ValueError(f"{len(sources)} sources for {len(readings)} readings")
        for r in readings:
            # The rates pack_rows can pack; the table's check refuses those below 30.
            if not 0 <= r.heart_rate <= VALID_MAX_BPM:
                raise ValueError(f"heart rate {r.heart_rate} cannot be stored: {r}")
        result = self.write_rows(
            group,
            reading_rows.pack_rows(
                [r.customer_id for r in readings],
                [to_micros(r.ts) for r in readings],
                [r.heart_rate for r in readings],
            ),
            _Listed(readings),
            offsets,
            rejected=rejected,
            source=None if sources is None else sources.__getitem__,
            on_conflicts=on_conflicts,
        )
        stored = result.stored_instants
        if stored is None:  # all of them or none
            stored = [r.ts for r in readings] if result.stored else []
        return WriteResult(
            stored=stored,
            low=result.low,
            high=result.high,
            duplicates=result.duplicates,
            conflicts=result.conflicts,
            dead_letters=result.dead_letters,
        )

    def write_rows(
        self,
        group: str,
        copy_data: bytes,
        readings: StagedReadings,
        offsets: Mapping[Partition, int],
        *,
        rejected: Sequence[tuple[Record, Rejection]] = (),
        source: Callable[[int], Record] | None = None,
        on_conflicts: Callable[[list[Conflict]], None] | None = None,
    ) -> BatchResult:
        """Store a batch's readings, dead letters and offsets in one transaction.

        ``copy_data`` is the readings' binary COPY (``reading_rows.pack_rows``); the
        answer is counts from one aggregate row, not a row per reading. ``readings``
        and ``source`` are asked only of a conflicting reading: its ``Reading`` and the
        record it came from (kept in ``dead_letters`` too when ``source`` is given).
        Every ``rejected`` record is kept there (once: a row already there is left as
        it is). ``on_conflicts`` is called with the batch's conflicts, only if there
        are some, inside the transaction just before it commits; if it raises, nothing
        of the batch is stored and the exception propagates.
        """
        staged = len(readings)
        with self._transaction() as conn, conn.cursor() as cur:
            stored = low = high = 0
            instants: list[datetime] | None = None
            conflicts: list[Conflict] = []
            if staged:
                with cur.copy(reading_rows.COPY_STAGING) as copy:
                    copy.write(copy_data)
                cur.execute(reading_rows.MOVE_STAGED_COUNTED, {"staged": staged})
                row = cur.fetchone()
                assert row is not None
                stored, low, high, instants = row
                if stored < staged:
                    cur.execute(reading_rows.FIND_CONFLICTS)
                    for i, rate in cur.fetchall():
                        reading = readings.reading(i)
                        conflicts.append(
                            Conflict(i, reading, rate, conflicting_reading(reading, rate))
                        )
            letters = [from_record(record, rejection, group) for record, rejection in rejected]
            if source is not None:
                letters += [from_record(source(c.index), c.rejection, group) for c in conflicts]
            added = _finish_batch(cur, group, letters, offsets)
            if conflicts and on_conflicts is not None:
                on_conflicts(conflicts)
        return BatchResult(
            staged=staged,
            stored=stored,
            low=low,
            high=high,
            duplicates=staged - stored - len(conflicts),
            conflicts=conflicts,
            dead_letters=added,
            stored_instants=instants,
        )

    def count_stale_customers(self, stale_after: float, lookback: float = 3600.0) -> int:
        """Customers with a reading in ``lookback`` seconds but none in ``stale_after``.

        Reads one row per customer (``customer_last_seen``), however many readings
        are stored; a customer's time there may be up to 10 s behind its newest reading.
        """
        with self._transaction() as conn:
            params = {"stale": stale_after, "lookback": lookback}
            row = conn.execute(reading_rows.COUNT_STALE, params).fetchone()
        return int(row[0]) if row else 0

    def write_one(self, reading: Reading) -> bool:
        """Store one reading in its own transaction (the slow baseline the benchmark compares)."""
        with self._transaction() as conn:
            cur = conn.execute(
                reading_rows.INSERT_ONE,
                (reading.customer_id, reading.ts, reading.heart_rate, reading.anomaly),
            )
            return cur.rowcount == 1

    def count_dead_letters(self) -> list[DeadLetterCount]:
        """Dead letters per reason, most first."""
        with self._transaction() as conn:
            counts = conn.execute(dead_letter_rows.COUNT).fetchall()
        return [DeadLetterCount(reason, total, redriven) for reason, total, redriven in counts]

    def dead_letters(
        self,
        *,
        reason: str | None = None,
        sources: Sequence[Source] | None = None,
        pending_only: bool = False,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> list[DeadLetter]:
        """Dead letters of ``reason`` and among ``sources`` (``None``: any), ``limit`` at most.

        ``pending_only`` leaves out the ones already re-driven. Newest first, or in
        the order they were read (topic, partition, offset).
        """
        params = {
            "reason": reason,
            "pending": pending_only,
            "limit": limit,
            **dead_letter_rows.source_params(sources),
        }
        statement = dead_letter_rows.NEWEST if newest_first else dead_letter_rows.IN_ORDER
        with self._transaction() as conn:
            found = conn.execute(statement, params).fetchall()
        return [dead_letter_rows.from_row(row) for row in found]

    def mark_redriven(self, sources: Sequence[Source]) -> int:
        """Record that these dead letters were produced again; how many rows that was."""
        if not sources:
            return 0
        with self._transaction() as conn:
            return conn.execute(
                dead_letter_rows.MARK_REDRIVEN, dead_letter_rows.source_params(sources)
            ).rowcount

    def execute(
        self,
        statements: Sequence[tuple[str, Mapping[str, Any] | None]],
        *,
        lock_timeout: float | None = None,
    ) -> list[int]:
        """Run ``statements`` in one transaction; the rows each one affected.

        ``lock_timeout`` (seconds) bounds every lock wait of this transaction only,
        e.g. for DDL that must not hold up the consumers' writes for long.
        """
        counts = []
        with self._transaction() as conn:
            if lock_timeout is not None:
                conn.execute(SET_LOCAL_LOCK_TIMEOUT, {"lock": _milliseconds(lock_timeout)})
            for statement, params in statements:
                counts.append(conn.execute(statement, params).rowcount)
        return counts

    @contextmanager
    def advisory_lock(self, key: int) -> Iterator[bool]:
        """Hold PostgreSQL's session advisory lock ``key`` while inside, if it was free.

        Yields False at once when another session holds it. One pooled connection
        stays taken for the lock until the block ends.
        """
        try:
            with self._pool.connection() as conn:
                conn.autocommit = True
                acquired = False
                try:
                    row = conn.execute(TRY_ADVISORY_LOCK, {"key": key}).fetchone()
                    acquired = bool(row and row[0])
                    yield acquired
                finally:
                    if acquired:
                        conn.execute(ADVISORY_UNLOCK, {"key": key})
                    conn.autocommit = False
        except _TRANSIENT as exc:
            raise DatabaseUnavailable(_describe(exc)) from exc

    def query(
        self, statement: str, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Rows of a read-only query, as dicts (for `heartbeat stats` and dashboards' checks)."""
        with self._transaction() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(statement, params)
            return cur.fetchall()
