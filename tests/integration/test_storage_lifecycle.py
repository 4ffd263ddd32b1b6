"""Partitions, retention, rollups and last-seen against the real PostgreSQL.

The migration that partitions ``heartbeats`` converts a table that holds readings, with
every row; ``heartbeat maintain`` makes partitions ahead, gives strays of the default
partition their own, drops expired days whole, rolls pending minutes up exactly once, and
does nothing a second time or while another run holds its lock.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from heartbeat.cli import main
from heartbeat.errors import DatabaseUnavailable
from heartbeat.maintain import LOCK_KEY
from heartbeat.migrations import Migrator
from heartbeat.store import Store
from heartbeat.validation import Reading, classify
from tests.integration.pipeline import database_migrated_through, drop_database, unique

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("logging_as_it_was")]

GROUP = "group-a"
NOW = datetime.now(UTC).replace(microsecond=0)
UTC_MIDNIGHT = NOW.replace(hour=0, minute=0, second=0)


def sql(conninfo: str, statement: str, params: object = None) -> list[tuple]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        cursor = conn.execute(statement, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def partitions(conninfo: str, table: str = "heartbeats") -> list[str]:
    rows = sql(
        conninfo,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass ORDER BY 1",
        (table,),
    )
    return [name for (name,) in rows]


def day_name(table: str, moment: datetime) -> str:
    return f"{table}_p{moment.astimezone(UTC):%Y%m%d}"


def reading(customer: int, ts: datetime, heart_rate: int = 70) -> Reading:
    return Reading(customer, ts, heart_rate, classify(heart_rate))


def maintain(monkeypatch, conninfo: str, capsys, **settings: object) -> tuple[int, list[str]]:
    monkeypatch.setenv("DATABASE_URL", conninfo)
    for name, value in settings.items():
        monkeypatch.setenv(name, str(value))
    code = main(["maintain"])
    return code, capsys.readouterr().out.splitlines()


@pytest.fixture(autouse=True)
def _no_dotenv(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # keep a developer's .env out of the tests


@pytest.fixture
def store(database):
    with Store(database, max_size=2, connect_timeout=2) as store:
        yield store


@pytest.fixture
def database_before_partitioning(postgres_service, tmp_path):
    """A database with the migrations up to 0003 only: heartbeats is one table."""
    with database_migrated_through(postgres_service.conninfo, tmp_path, 3, "hb_conv") as conninfo:
        yield conninfo


# --- the migration -----------------------------------------------------------------------

FILL = """
INSERT INTO heartbeats (customer_id, ts, heart_rate, anomaly, ingested_at)
SELECT c, t, hr, CASE WHEN hr < 45 THEN 'low' WHEN hr > 180 THEN 'high' END,
       t + interval '2 seconds'
FROM generate_series(1, 50) AS c,
     generate_series(now() - interval '4 days', now(), interval '7 minutes') AS t,
     LATERAL (SELECT (40 + (c * 37 + extract(epoch FROM t)::bigint) % 150)::smallint AS hr) AS r
"""
EVERY_ROW = "SELECT customer_id, ts, heart_rate, anomaly, ingested_at FROM heartbeats"
PER_MINUTE = """
SELECT customer_id, date_bin('1 minute', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
       count(*), min(heart_rate), max(heart_rate), sum(heart_rate),
       count(*) FILTER (WHERE anomaly = 'low'), count(*) FILTER (WHERE anomaly = 'high'),
       max(ts)
FROM heartbeats GROUP BY 1, 2
"""
FLEET_PER_MINUTE = """
SELECT date_bin('1 minute', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00'), count(*),
       count(DISTINCT customer_id), count(*) FILTER (WHERE anomaly = 'low'),
       count(*) FILTER (WHERE anomaly = 'high'), max(ts)
FROM heartbeats GROUP BY 1
"""
FLEET = """
SELECT minute, readings, customers, low_anomalies, high_anomalies, newest_ts
FROM heartbeat_fleet_minutes
"""
FLEET_LIVE = FLEET.replace("heartbeat_fleet_minutes", "heartbeat_fleet_minutes_live")
PER_HOUR = """
SELECT customer_id, date_bin('1 hour', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
       count(*), min(heart_rate), max(heart_rate), sum(heart_rate),
       sum(heart_rate::integer * heart_rate),
       count(*) FILTER (WHERE anomaly = 'low'), count(*) FILTER (WHERE anomaly = 'high'),
       max(ts)
FROM heartbeats GROUP BY 1, 2
"""
HOURS = """
SELECT customer_id, hour, readings, min_heart_rate, max_heart_rate, sum_heart_rate,
       sum_squares, low_anomalies, high_anomalies, newest_ts
FROM heartbeat_hours
"""
ROLLED_UP = """
SELECT customer_id, minute, readings, min_heart_rate, max_heart_rate, sum_heart_rate,
       low_anomalies, high_anomalies, newest_ts
FROM heartbeat_minutes
"""


def test_the_migration_converts_a_populated_table_into_daily_partitions_without_loss(
    database_before_partitioning,
):
    conninfo = database_before_partitioning
    sql(conninfo, FILL)
    before = set(sql(conninfo, EVERY_ROW))
    assert len(before) > 40_000
    assert {row[3] for row in before} == {None, "low", "high"}
    days = {day_name("heartbeats", row[1]) for row in before}

    started = time.perf_counter()
    with Migrator(conninfo) as migrator:
        applied = migrator.apply()
    elapsed = time.perf_counter() - started
    print(f"\nmigration of {len(before)} readings: {elapsed:.2f} s")

    assert applied == [
        "0004.customer-last-seen",
        "0005.heartbeats-by-time",
        "0006.heartbeat-minutes",
        "0007.heartbeat-fleet-minutes",
        "0008.heartbeat-hours",
    ]
    assert set(sql(conninfo, EVERY_ROW)) == before
    assert partitions(conninfo) == sorted([*days, "heartbeats_default"])
    assert sql(conninfo, "SELECT count(*) FROM heartbeats_default") == [(0,)]
    assert set(sql(conninfo, ROLLED_UP)) == set(sql(conninfo, PER_MINUTE))
    assert set(sql(conninfo, FLEET)) == set(sql(conninfo, FLEET_PER_MINUTE))
    assert set(sql(conninfo, HOURS)) == set(sql(conninfo, PER_HOUR))
    assert set(sql(conninfo, "SELECT customer_id, newest_ts FROM customer_last_seen")) == set(
        sql(conninfo, "SELECT customer_id, max(ts) FROM heartbeats GROUP BY 1")
    )
    # The key still refuses a second reading for the same customer and instant.
    customer, ts = next(iter(before))[:2]
    with pytest.raises(psycopg.errors.UniqueViolation):
        sql(conninfo, "INSERT INTO heartbeats VALUES (%s, %s, 70)", (customer, ts))


def test_rolling_the_partitioning_back_keeps_every_reading_in_one_table(
    database_before_partitioning,
):
    conninfo = database_before_partitioning
    sql(conninfo, FILL)
    before = set(sql(conninfo, EVERY_ROW))
    with Migrator(conninfo) as migrator:
        migrator.apply()
        assert migrator.rollback(4) == [
            "0008.heartbeat-hours",
            "0007.heartbeat-fleet-minutes",
            "0006.heartbeat-minutes",
            "0005.heartbeats-by-time",
        ]
    assert sql(conninfo, "SELECT relkind::text FROM pg_class WHERE relname = 'heartbeats'") == [
        ("r",)
    ]
    assert set(sql(conninfo, EVERY_ROW)) == before
    with Migrator(conninfo) as migrator:
        migrator.apply()
    assert set(sql(conninfo, EVERY_ROW)) == before


# --- heartbeat maintain ----------------------------------------------------------------


def test_maintain_makes_today_and_the_days_ahead_then_has_nothing_to_do(
    database, monkeypatch, capsys
):
    code, lines = maintain(monkeypatch, database, capsys, PARTITION_AHEAD_DAYS=2)
    assert code == 0
    days = [UTC_MIDNIGHT + timedelta(days=n) for n in range(3)]
    for table in ("heartbeats", "heartbeat_minutes"):
        expected = [day_name(table, day) for day in days] + [f"{table}_default"]
        assert partitions(database, table) == sorted(expected)
    # The hourly rollups by week, from Monday: this week's, and the next if the days
    # ahead reach into it.
    weeks = sorted({day - timedelta(days=day.weekday()) for day in days})
    expected = [day_name("heartbeat_hours", week) for week in weeks] + ["heartbeat_hours_default"]
    assert partitions(database, "heartbeat_hours") == sorted(expected)
    assert sum(line.startswith("created ") for line in lines) == 6 + len(weeks)
    assert maintain(monkeypatch, database, capsys, PARTITION_AHEAD_DAYS=2) == (0, ["nothing to do"])


def test_readings_without_a_partition_are_stored_then_moved_or_expired_by_maintain(
    store, database, monkeypatch, capsys
):
    old = NOW - timedelta(days=400)
    ahead = NOW + timedelta(days=30)
    recent = NOW - timedelta(days=2)
    result = store.write_batch(
        GROUP, [reading(1, old), reading(1, ahead), reading(2, recent), reading(3, NOW)], {}
    )
    assert len(result.stored) == 4, "none refused for want of a partition"
    assert sql(database, "SELECT count(*) FROM heartbeats_default") == [(4,)]

    code, lines = maintain(monkeypatch, database, capsys, RAW_RETENTION_DAYS=7)
    assert code == 0
    assert sql(database, "SELECT count(*) FROM heartbeats_default") == [(0,)]
    names = partitions(database)
    for moment in (ahead, recent, NOW):
        assert day_name("heartbeats", moment) in names
    assert day_name("heartbeats", old) not in names
    assert set(sql(database, "SELECT customer_id, ts FROM heartbeats")) == {
        (1, ahead),
        (2, recent),
        (3, NOW),
    }
    assert any(line.startswith("deleted 1 rows before") for line in lines), lines
    assert any("moved 1 rows from heartbeats_default" in line for line in lines), lines


def test_an_expired_day_is_dropped_whole_and_quickly_and_the_other_days_stay(
    store, database, monkeypatch, capsys
):
    days = [NOW - timedelta(days=n) for n in range(10)]
    store.write_batch(GROUP, [reading(c, day) for day in days for c in (1, 2, 3)], {})
    assert maintain(monkeypatch, database, capsys, RAW_RETENTION_DAYS=30)[0] == 0
    assert sql(database, "SELECT count(*) FROM heartbeats") == [(30,)]

    started = time.perf_counter()
    code, lines = maintain(monkeypatch, database, capsys, RAW_RETENTION_DAYS=7)
    elapsed = time.perf_counter() - started
    print(f"\nmaintain dropping 2 expired days: {elapsed:.3f} s")
    assert code == 0
    dropped = [line for line in lines if line.startswith("dropped heartbeats_p")]
    assert len(dropped) == 2, lines  # 9 and 8 days ago; 7 days ago holds the expiry
    kept = {ts for (ts,) in sql(database, "SELECT DISTINCT ts FROM heartbeats")}
    assert kept == set(days[:8])
    assert elapsed < 5
    # The rollups of the dropped days stay: they have their own retention.
    assert sql(database, "SELECT sum(readings) FROM heartbeat_minutes") == [(30,)]


def test_a_maintain_already_running_elsewhere_makes_the_second_one_do_nothing(
    database, monkeypatch, capsys
):
    with psycopg.connect(database, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        code, lines = maintain(monkeypatch, database, capsys)
        assert (code, lines) == (0, ["another `heartbeat maintain` is running; nothing done"])
        assert partitions(database) == ["heartbeats_default"]
    assert maintain(monkeypatch, database, capsys)[0] == 0
    assert len(partitions(database)) > 1


def test_maintain_started_in_several_places_at_once_makes_each_partition_once(
    database, monkeypatch, capsys
):
    monkeypatch.setenv("DATABASE_URL", database)
    codes: list[int] = []
    threads = [threading.Thread(target=lambda: codes.append(main(["maintain"]))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert codes == [0, 0, 0, 0]
    assert len(partitions(database)) == 5  # today, three ahead, the default
    capsys.readouterr()


def test_a_drop_that_would_queue_writers_behind_a_long_query_gives_up_and_says_so(
    store, database, monkeypatch, capsys
):
    store.write_batch(GROUP, [reading(1, NOW - timedelta(days=9)), reading(1, NOW)], {})
    assert maintain(monkeypatch, database, capsys, RAW_RETENTION_DAYS=30)[0] == 0
    outcome: list[tuple[int, list[str]]] = []
    with psycopg.connect(database) as reader:
        reader.execute("SELECT count(*) FROM heartbeats")  # holds its lock until rollback
        worker = threading.Thread(
            target=lambda: outcome.append(
                maintain(
                    monkeypatch,
                    database,
                    capsys,
                    RAW_RETENTION_DAYS=7,
                    MAINTENANCE_LOCK_TIMEOUT_SECONDS=0.2,
                )
            )
        )
        worker.start()
        # Meanwhile batches keep being written: none waits long behind the drop's lock.
        slowest, second = 0.0, 0
        while worker.is_alive():
            second += 1
            started = time.perf_counter()
            store.write_batch(GROUP, [reading(2, NOW - timedelta(seconds=second))], {})
            slowest = max(slowest, time.perf_counter() - started)
            time.sleep(0.05)
        worker.join()
        reader.rollback()
    print(f"\nslowest batch while a drop waited: {slowest:.3f} s")
    [(code, lines)] = outcome
    assert code == 1
    assert any(line.startswith("not done: drop heartbeats_p") for line in lines), lines
    assert slowest < 2.0
    assert maintain(monkeypatch, database, capsys, RAW_RETENTION_DAYS=7)[0] == 0
    assert sql(database, "SELECT count(*) FROM heartbeats WHERE customer_id = 1") == [(1,)]


def test_maintain_before_migrate_says_to_migrate_in_one_line(postgres_service, tmp_path):
    name = unique("hb_empty").replace("-", "_")
    sql(postgres_service.conninfo, f'CREATE DATABASE "{name}"')
    try:
        conninfo = make_conninfo(postgres_service.conninfo, dbname=name)
        done = subprocess.run(
            [sys.executable, "-m", "heartbeat", "maintain"],
            env={**os.environ, "DATABASE_URL": conninfo},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        drop_database(postgres_service.conninfo, name)
    assert done.returncode == 1
    assert done.stderr.strip().endswith(
        "heartbeats is not partitioned; run `heartbeat migrate` first"
    )
    assert "Traceback" not in done.stderr


# --- last seen and rollups --------------------------------------------------------------

LIVE = """
SELECT customer_id, minute, readings, min_heart_rate, max_heart_rate, sum_heart_rate,
       low_anomalies, high_anomalies, newest_ts
FROM heartbeat_minutes_live
"""


def test_last_seen_moves_on_with_newer_readings_by_ten_seconds_and_never_back(store, database):
    def seen() -> dict[int, datetime]:
        return dict(sql(database, "SELECT customer_id, newest_ts FROM customer_last_seen"))

    t0 = NOW - timedelta(minutes=30)
    store.write_batch(GROUP, [reading(1, t0), reading(1, t0 + timedelta(seconds=3))], {})
    assert seen() == {1: t0 + timedelta(seconds=3)}
    store.write_batch(GROUP, [reading(1, t0 + timedelta(seconds=9))], {})
    assert seen() == {1: t0 + timedelta(seconds=3)}, "less than 10 s on: not rewritten"
    store.write_batch(GROUP, [reading(1, t0 + timedelta(seconds=20)), reading(2, t0)], {})
    assert seen() == {1: t0 + timedelta(seconds=20), 2: t0}
    store.write_batch(GROUP, [reading(1, t0 - timedelta(minutes=5))], {})
    assert seen()[1] == t0 + timedelta(seconds=20), "an older reading does not move it back"


def test_stale_customers_are_counted_from_last_seen(store, database):
    # Now, not the module's NOW: the suite may import this module long before it runs the test.
    now = datetime.now(UTC)
    store.write_batch(
        GROUP,
        [
            reading(1, now - timedelta(seconds=30)),  # live
            reading(2, now - timedelta(minutes=20)),  # stale
            reading(3, now - timedelta(minutes=40)),  # stale
            reading(4, now - timedelta(hours=3)),  # beyond the lookback
        ],
        {},
    )
    assert store.count_stale_customers(300) == 2
    assert store.count_stale_customers(300, lookback=4 * 3600) == 3


def test_rollups_count_each_stored_reading_once_before_and_after_maintain(
    store, database, monkeypatch, capsys
):
    t0 = NOW.replace(minute=0, second=0) - timedelta(minutes=30)  # in an hour that is over
    batch = [
        reading(c, t0 + timedelta(seconds=s), 40 + (s % 60) * 3)
        for c in (1, 2)
        for s in range(0, 150, 5)
    ]
    store.write_batch(GROUP, batch, {})
    store.write_batch(GROUP, batch[:20], {})  # redelivered: duplicates
    expected = set(sql(database, PER_MINUTE))
    assert len(expected) == 6  # two customers, three minutes
    assert sum(row[6] for row in expected) > 0, "low anomalies"
    assert sum(row[7] for row in expected) > 0, "high anomalies"
    assert sql(database, "SELECT count(*) FROM heartbeat_minutes") == [(0,)]
    assert set(sql(database, LIVE)) == expected, "pending minutes are computed from readings"
    fleet = set(sql(database, FLEET_PER_MINUTE))
    assert set(sql(database, FLEET_LIVE)) == fleet

    code, lines = maintain(monkeypatch, database, capsys)
    assert code == 0
    assert "rolled up 3 pending minutes (6 rows)" in lines
    assert sql(database, "SELECT count(*) FROM heartbeat_minutes_pending") == [(0,)]
    assert set(sql(database, ROLLED_UP)) == expected
    assert set(sql(database, LIVE)) == expected
    assert set(sql(database, FLEET)) == set(sql(database, FLEET_LIVE)) == fleet

    late = reading(1, t0 + timedelta(seconds=1), 200)  # late, for a minute rolled up
    store.write_batch(GROUP, [late], {})
    expected = set(sql(database, PER_MINUTE))
    assert set(sql(database, LIVE)) == expected
    assert maintain(monkeypatch, database, capsys)[1] == [
        "rolled up 1 pending minutes (2 rows)",
        "rolled up 1 pending hours (2 rows)",
    ]
    assert set(sql(database, ROLLED_UP)) == expected
    assert set(sql(database, FLEET)) == set(sql(database, FLEET_PER_MINUTE))
    minute = "SELECT readings FROM heartbeat_minutes WHERE customer_id = 1 AND minute = %s"
    assert sql(database, minute, (t0,)) == [(13,)]


def test_batches_written_while_maintain_attaches_their_partition_are_all_stored(
    store, database, monkeypatch, capsys
):
    # No partition yet: every reading goes to the default partition until maintain
    # attaches today's, moving them; a batch caught in between is told to try again.
    stop = threading.Event()
    written: list[Reading] = []
    retries = 0

    def write() -> None:
        nonlocal retries
        second = 0
        while not stop.is_set():
            second += 1
            batch = [reading(c, NOW - timedelta(seconds=second)) for c in range(1, 51)]
            while True:
                try:
                    store.write_batch(GROUP, batch, {})
                    break
                except DatabaseUnavailable:
                    retries += 1
            written.extend(batch)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(0.5)
        code, lines = maintain(monkeypatch, database, capsys)
        time.sleep(0.3)
    finally:
        stop.set()
        writer.join(30)
    assert code == 0
    assert any("moved" in line for line in lines), lines
    print(f"\nbatches told to try again while a partition was attached: {retries}")
    stored = sql(database, "SELECT customer_id, ts FROM heartbeats")
    assert len(stored) == len(written) == len(set(stored))
    assert sql(database, "SELECT count(*) FROM heartbeats_default") == [(0,)]


def test_maintain_every_n_seconds_runs_until_sigterm_then_exits_0(database, tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "heartbeat", "maintain", "--every", "0.5"],
        env={**os.environ, "DATABASE_URL": database},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(partitions(database)) < 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.2)  # at least two more runs, with nothing to do
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    lines = out.splitlines()
    assert sum(line.startswith("created heartbeats_p") for line in lines) == 4
    assert lines.count("nothing to do") >= 2
