"""Storage at scale: what a batch costs to write, and what the stored fleet costs to read.

    python -m tests.benchmarks.storage_scale [--readings 100000000] [--batches 300]

Starts its own PostgreSQL (Debian's, in a temporary folder unless --dir), then:

1. Write cost. The same batches (5,000 readings of 10,000 customers sending one a
   second) go, interleaved batch by batch so the shared machine's noise falls on all
   alike, into one database per way of writing them:
   * insert only (the statement before last-seen and rollups);
   * as shipped: insert, last-seen moved on by 10 s or more, pending minutes added;
   * exact last-seen: the same, rewriting last-seen on every batch;
   * rollups in the transaction: as shipped plus per-minute rollups upserted by the batch
     (the alternative not taken).
   Then `heartbeat maintain` rolls up what the shipped database has pending: its cost per
   batch is what building rollups by maintenance adds.
2. Read cost. ``storage_data.build`` fills a database with --readings readings for 10,000
   customers over 10 days; every SQL panel and every `heartbeat stats` query (1 h, 6 h,
   24 h) is timed without and with JIT; `heartbeat maintain` drops the oldest day.

Nothing is asserted; the figures are printed.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from heartbeat import reading_rows
from heartbeat.maintain import Maintainer
from heartbeat.settings import Settings
from heartbeat.store import Store
from heartbeat_localstack.postgres import PostgresServer
from tests.benchmarks import storage_data
from tests.integration.pipeline import create_database

BATCH = 5000
FLEET = 10_000
INSERT_ONLY = """
INSERT INTO heartbeats (customer_id, ts, heart_rate, anomaly)
SELECT customer_id, ts, heart_rate, anomaly FROM heartbeats_staging
ON CONFLICT (customer_id, ts) DO NOTHING
RETURNING ts, anomaly
"""
EXACT_LAST_SEEN = reading_rows.MOVE_STAGED.replace(
    f"make_interval(secs => {reading_rows.LAST_SEEN_RESOLUTION.total_seconds()})", "interval '0'"
)
ROLLUPS_IN_TRANSACTION = reading_rows.MOVE_STAGED.replace(
    "RETURNING customer_id, ts, anomaly", "RETURNING customer_id, ts, heart_rate, anomaly"
).replace(
    "\nSELECT ts, anomaly FROM stored",
    f""", minutes AS (
    INSERT INTO heartbeat_minutes AS m (
        customer_id, minute, readings, min_heart_rate, max_heart_rate, sum_heart_rate,
        sum_squares, low_anomalies, high_anomalies, newest_ts
    )
    SELECT customer_id, date_bin('1 minute', ts, {reading_rows.MINUTE_ORIGIN}), count(*),
           min(heart_rate), max(heart_rate), sum(heart_rate),
           sum(heart_rate::integer * heart_rate),
           count(*) FILTER (WHERE anomaly = 'low'), count(*) FILTER (WHERE anomaly = 'high'),
           max(ts)
    FROM stored
    GROUP BY 1, 2
    ORDER BY 1, 2
    ON CONFLICT (customer_id, minute) DO UPDATE SET
        readings = m.readings + EXCLUDED.readings,
        min_heart_rate = least(m.min_heart_rate, EXCLUDED.min_heart_rate),
        max_heart_rate = greatest(m.max_heart_rate, EXCLUDED.max_heart_rate),
        sum_heart_rate = m.sum_heart_rate + EXCLUDED.sum_heart_rate,
        sum_squares = m.sum_squares + EXCLUDED.sum_squares,
        low_anomalies = m.low_anomalies + EXCLUDED.low_anomalies,
        high_anomalies = m.high_anomalies + EXCLUDED.high_anomalies,
        newest_ts = greatest(m.newest_ts, EXCLUDED.newest_ts)
)
SELECT ts, anomaly FROM stored""",
)
WAYS = {
    "insert only": INSERT_ONLY,
    "as shipped (last-seen by 10 s, pending minutes)": reading_rows.MOVE_STAGED,
    "exact last-seen on every batch": EXACT_LAST_SEEN,
    "rollups in the transaction": ROLLUPS_IN_TRANSACTION,
}


def fleet_batches(count: int, start: datetime) -> list[list[tuple[object, ...]]]:
    """``count`` batches of the fleet's readings, one a second per customer, in order."""
    rng = random.Random(2026)
    batches = []
    for b in range(count):
        rows = []
        for i in range(BATCH):
            n = b * BATCH + i
            rate = rng.randint(40, 190)
            anomaly = "low" if rate < 45 else "high" if rate > 180 else None
            ts = start + timedelta(seconds=n // FLEET)
            rows.append((i, n % FLEET + 1, ts, rate, anomaly))
        batches.append(rows)
    return batches


def write_cost(admin: str, settings: Settings, count: int) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=count * BATCH // FLEET)
    batches = fleet_batches(count, start)
    connections = {}
    shipped = ""
    for index, way in enumerate(WAYS):
        conninfo = create_database(admin, f"write_cost_{index}")
        with Store(conninfo, max_size=2) as store:
            Maintainer(store, settings.model_copy(update={"database_url": conninfo})).run()
        conn = psycopg.connect(conninfo)
        conn.execute(reading_rows.STAGING_DDL)
        conn.commit()
        connections[way] = conn
        if way == "as shipped (last-seen by 10 s, pending minutes)":
            shipped = conninfo
    seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    for rows in batches:
        for way, statement in WAYS.items():
            conn = connections[way]
            started = time.perf_counter()
            with conn.cursor() as cur:
                with cur.copy(reading_rows.COPY_STAGING) as copy:
                    copy.set_types(["int4", "int8", "timestamptz", "int2", "text"])
                    for row in rows:
                        copy.write_row(row)
                cur.execute(statement)  # type: ignore[arg-type]
                cur.fetchall()
            conn.commit()
            seconds[way].append(time.perf_counter() - started)
    for conn in connections.values():
        conn.close()
    with Store(shipped, max_size=2) as store:
        started = time.perf_counter()
        report = Maintainer(store, settings.model_copy(update={"database_url": shipped})).run()
        rollup_seconds = time.perf_counter() - started

    warm = max(1, count // 10)  # the first batches fill caches and new pages
    base = statistics.median(seconds["insert only"][warm:])
    print(f"\nwrite cost, {count} batches of {BATCH} readings ({FLEET} customers, 1/s each):")
    for way, values in seconds.items():
        median = statistics.median(values[warm:])
        print(
            f"  {way:50} {median * 1000:7.1f} ms per batch"
            f"  (+{(median - base) * 1000:5.1f} ms, {100 * (median - base) / base:+4.0f}%)"
        )
    print(
        f"  maintenance rolling up those {count * BATCH:,} readings: {rollup_seconds:.2f} s"
        f" = {rollup_seconds / count * 1000:.1f} ms per batch ({'; '.join(report.lines())})"
    )


def read_cost(admin: str, settings: Settings, readings: int) -> None:
    conninfo = create_database(admin, "fleet")
    settings = settings.model_copy(update={"database_url": conninfo})
    started = time.perf_counter()
    built = storage_data.build(
        conninfo,
        readings,
        settings=settings,
        progress=lambda step: print(
            f"  {time.perf_counter() - started:7.1f} s  {step}", flush=True
        ),
    )
    steps = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in built.seconds.items())
    print(f"\nbuilt {built.readings:,} readings in {time.perf_counter() - started:.1f} s ({steps})")
    with psycopg.connect(conninfo) as conn:
        sizes = conn.execute(
            "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))"
            " FILTER (WHERE i.inhparent = 'heartbeats'::regclass)),"
            " pg_size_pretty(sum(pg_total_relation_size(c.oid))"
            " FILTER (WHERE i.inhparent = 'heartbeat_minutes'::regclass)),"
            " pg_size_pretty(sum(pg_total_relation_size(c.oid))"
            " FILTER (WHERE i.inhparent = 'heartbeat_hours'::regclass))"
            " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        ).fetchone()
    print(
        f"on disk, with indexes: readings {sizes[0]}, per-minute rollups {sizes[1]},"
        f" per-hour rollups {sizes[2]}"
    )
    spans = {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "24h": timedelta(hours=24)}
    queries = storage_data.dashboard_queries(conninfo, spans)
    queries += storage_data.stats_queries(spans)
    for jit in (False, True):
        print(f"\nquery timings at {built.readings:,} readings, jit {'on' if jit else 'off'}:")
        storage_data.print_timings(storage_data.time_queries(conninfo, queries, jit=jit))
    dropped = storage_data.drop_expired_day(conninfo, settings, built)
    print(
        f"\nmaintain dropping the oldest day ({dropped.dropped_readings:,} readings):"
        f" {dropped.seconds:.3f} s; readings {dropped.readings_before:,} ->"
        f" {dropped.readings_after:,}; rollups {dropped.rollups_before:,} ->"
        f" {dropped.rollups_after:,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readings", type=int, default=100_000_000)
    parser.add_argument("--batches", type=int, default=300, help="batches of the write cost")
    parser.add_argument("--skip-write-cost", action="store_true")
    parser.add_argument("--skip-read-cost", action="store_true")
    parser.add_argument("--dir", type=Path, help="keep PostgreSQL's files here (default: temp)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="heartbeat-storage-") as tmp:
        server = PostgresServer((args.dir or Path(tmp)) / "postgres")
        server.start()
        try:
            settings = Settings(_env_file=None, database_url=server.conninfo)  # type: ignore[call-arg]
            if not args.skip_write_cost:
                write_cost(server.conninfo, settings, args.batches)
            if not args.skip_read_cost:
                read_cost(server.conninfo, settings, args.readings)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
