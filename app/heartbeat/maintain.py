"""`heartbeat maintain`: partitions made ahead, expired ones dropped, rollups brought up
to date, in one run that changes nothing when there is nothing to do.

A run, under PostgreSQL's session advisory lock ``LOCK_KEY`` (a second run started
meanwhile, from a CronJob, ``make dev`` or by hand, finds it taken and does nothing):

1. for ``heartbeats``: look at the partitions and at the default partition's strays,
   let ``heartbeat.maintenance.plan`` decide, create, purge and drop (one transaction
   per step);
2. forget pending minutes past the raw retention, then recompute every pending minute
   from the readings (``heartbeat.partition_sql.ROLLUP``, ten minutes per statement),
   which marks their hours pending;
3. the same as 1. for ``heartbeat_minutes``;
4. recompute every pending hour that is over from its minutes (``HOURLY_ROLLUP``, two
   hours per statement), then the same as 1. for ``heartbeat_hours``;
5. delete fleet minutes older than the rollup retention and forget customers not seen
   within the hourly one (small tables: one row a minute, one row a customer).

A step that cannot get its locks within MAINTENANCE_LOCK_TIMEOUT_SECONDS is tried
three times, then reported as not done; the others still run, and the next run does
it. Every step is re-decided from what is there, so nothing is done twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from heartbeat import maintenance, partition_sql
from heartbeat.errors import SchemaNotMigrated, TransientError
from heartbeat.maintenance import Managed, Observed, Partition
from heartbeat.partition_sql import Statement
from heartbeat.settings import Settings
from heartbeat.store import Store

logger = logging.getLogger(__name__)

# pg_try_advisory_lock key of every `heartbeat maintain`, whatever its settings.
LOCK_KEY = 0x6862_6D61_696E  # "hbmain"
ATTEMPTS = 3


@dataclass
class Report:
    skipped: bool = False  # another run held the lock
    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        if self.skipped:
            return ["another `heartbeat maintain` is running; nothing done"]
        lines = self.done or ["nothing to do"]
        return lines + [f"not done: {failure}" for failure in self.failed]


def managed_tables(settings: Settings) -> tuple[Managed, Managed, Managed]:
    """The raw readings, their per-minute rollups (a UTC day per partition), then the
    per-hour ones (a UTC week per partition)."""
    return (
        Managed(
            "heartbeats",
            "ts",
            settings.partition_interval,
            timedelta(days=settings.raw_retention_days),
        ),
        Managed(
            "heartbeat_minutes",
            "minute",
            "day",
            timedelta(days=settings.rollup_retention_days),
        ),
        Managed(
            "heartbeat_hours",
            "hour",
            "week",
            timedelta(days=settings.hourly_rollup_retention_days),
        ),
    )


class Maintainer:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.raw, self.rollups, self.hours = managed_tables(settings)
        self.ahead = timedelta(days=settings.partition_ahead_days)
        self.lock_timeout = settings.maintenance_lock_timeout_seconds
        self._clock = clock
        self._pause = pause
        self._failures: list[str] = []

    def run(self) -> Report:
        report = Report()
        self._failures = report.failed
        with self.store.advisory_lock(LOCK_KEY) as acquired:
            if not acquired:
                report.skipped = True
                return report
            now = self._clock()
            self._partitions(self.raw, now, report)
            self._rollups(maintenance.expiry(now, self.raw.interval, self.raw.retention), report)
            # After the rollups: a minute rolled up beyond the partitions made so far
            # lands in the default partition and gets its own here.
            self._partitions(self.rollups, now, report)
            self._hourly_rollups(now, report)
            self._partitions(self.hours, now, report)
            rollup_expiry = maintenance.expiry(now, self.rollups.interval, self.rollups.retention)
            hourly_expiry = maintenance.expiry(now, self.hours.interval, self.hours.retention)
            expired = self._step(
                "forget fleet minutes",
                [(partition_sql.FORGET_FLEET_MINUTES, {"before": rollup_expiry})],
            )
            if expired and expired[0]:
                report.done.append(
                    f"deleted {expired[0]} fleet minutes before {_at(rollup_expiry)}"
                )
            forgotten = self._step(
                "forget customers", [(partition_sql.FORGET_CUSTOMERS, {"before": hourly_expiry})]
            )
            if forgotten and forgotten[0]:
                report.done.append(
                    f"forgot {forgotten[0]} customers not seen since {_at(hourly_expiry)}"
                )
        return report

    # --- partitions --------------------------------------------------------------

    def observe(self, managed: Managed) -> Observed:
        kind = self.store.query(partition_sql.KIND, {"table": managed.table})
        if not kind or kind[0]["kind"] != "p":
            raise SchemaNotMigrated(
                f"{managed.table} is not partitioned; run `heartbeat migrate` first"
            )
        rows = self.store.query(partition_sql.PARTITIONS, {"table": managed.table})
        default = next((row["name"] for row in rows if row["is_default"]), None)
        partitions = tuple(
            Partition(row["name"], row["lower"], row["upper"])
            for row in rows
            if not row["is_default"]
        )
        strays: tuple[datetime, ...] = ()
        if default:
            found = self.store.query(partition_sql.strays(managed, default))
            strays = tuple(row["hour"] for row in found)
        return Observed(partitions, default, strays)

    def _partitions(self, managed: Managed, now: datetime, report: Report) -> None:
        observed = self.observe(managed)
        plan = maintenance.plan(managed, observed, now=now, ahead=self.ahead)
        for create in plan.creates:
            span = f"{create.name} for {_at(create.lower)} to {_at(create.upper)}"
            counts = self._step(f"create {span}", partition_sql.create(create, observed.default))
            if counts is not None:
                moved = counts[partition_sql.MOVED_INDEX] if observed.default else 0
                extra = f" (moved {moved} rows from {observed.default})" if moved else ""
                report.done.append(f"created {span}{extra}")
        if plan.purge is not None:
            counts = self._step(f"purge {plan.purge.default}", partition_sql.purge(plan.purge))
            if counts is not None:
                report.done.append(
                    f"deleted {counts[0]} rows before {_at(plan.purge.before)}"
                    f" from {plan.purge.default}"
                )
        for drop in plan.drops:
            statements = partition_sql.drop(drop)
            if managed is self.raw and drop.upper is not None:
                statements = partition_sql.discard_pending(drop.upper) + statements
            if self._step(f"drop {drop.name}", statements) is not None:
                report.done.append(f"dropped {drop.name} (expired: before {_at(plan.expiry)})")

    # --- rollups -----------------------------------------------------------------

    def _rollups(self, raw_expiry: datetime, report: Report) -> None:
        self._step("discard old pending minutes", partition_sql.discard_pending(raw_expiry))
        minutes = [row["minute"] for row in self.store.query(partition_sql.PENDING_MINUTES)]
        rows = 0
        for lower, upper in maintenance.rollup_chunks(minutes):
            counts = self._step(
                f"roll up {_at(lower)} to {_at(upper)}", partition_sql.rollup(lower, upper)
            )
            rows += counts[0] if counts else 0
        if minutes:
            report.done.append(f"rolled up {len(minutes)} pending minutes ({rows} rows)")

    def _hourly_rollups(self, now: datetime, report: Report) -> None:
        pending = [row["hour"] for row in self.store.query(partition_sql.PENDING_HOURS)]
        hours = maintenance.ended_hours(pending, now)
        rows = 0
        chunks = maintenance.rollup_chunks(hours, maintenance.HOURLY_ROLLUP_SPAN, maintenance.HOUR)
        for lower, upper in chunks:
            counts = self._step(
                f"roll up the hours {_at(lower)} to {_at(upper)}",
                partition_sql.hourly_rollup(lower, upper),
            )
            rows += counts[0] if counts else 0
        if pending:
            self._step("analyze pending minutes and hours", [(partition_sql.ANALYZE_PENDING, None)])
        if hours:
            report.done.append(f"rolled up {len(hours)} pending hours ({rows} rows)")

    # --- steps -------------------------------------------------------------------

    def _step(self, what: str, statements: Sequence[Statement]) -> list[int] | None:
        """Run one step's statements in a transaction; None when it could not be done."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return self.store.execute(statements, lock_timeout=self.lock_timeout)
            except TransientError as exc:
                logger.warning("%s: attempt %d of %d failed: %s", what, attempt, ATTEMPTS, exc)
                if attempt < ATTEMPTS:
                    self._pause(float(attempt))
                else:
                    self._failures.append(f"{what}: {exc}")
        return None


def _at(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
