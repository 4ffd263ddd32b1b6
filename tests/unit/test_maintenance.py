"""What maintenance decides: partitions to make ahead and for strays, drops, purges, chunks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from heartbeat.maintenance import (
    Managed,
    Observed,
    Partition,
    expiry,
    floor,
    gaps,
    partition_name,
    plan,
    rollup_chunks,
)
from heartbeat.partition_sql import create, literal

NOW = datetime(2026, 3, 11, 15, 42, 7, tzinfo=UTC)  # a Wednesday
DAY = timedelta(days=1)
RAW = Managed("heartbeats", "ts", "day", timedelta(days=7))


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


def daily(*days: int) -> tuple[Partition, ...]:
    return tuple(Partition(f"heartbeats_p202603{d:02}", at(d), at(d) + DAY) for d in days)


def names(steps) -> list[str]:
    return [step.name for step in steps]


@pytest.mark.parametrize(
    ("interval", "expected"),
    [
        ("hour", datetime(2026, 3, 11, 15, tzinfo=UTC)),
        ("day", datetime(2026, 3, 11, tzinfo=UTC)),
        ("week", datetime(2026, 3, 9, tzinfo=UTC)),  # the Monday
    ],
)
def test_spans_start_on_the_hour_at_midnight_utc_or_on_monday(interval, expected):
    assert floor(NOW, interval) == expected
    east = NOW.astimezone(datetime.fromisoformat("2026-01-01T00:00+09:00").tzinfo)
    assert floor(east, interval) == expected, "the same instant in another zone"


@pytest.mark.parametrize(
    ("lower", "name"),
    [
        (at(5), "heartbeats_p20260305"),
        (at(5, 13), "heartbeats_p20260305_1300"),
    ],
)
def test_a_partition_is_named_after_the_utc_start_of_its_span(lower, name):
    assert partition_name("heartbeats", lower) == name


def test_an_empty_table_gets_todays_partition_and_the_days_ahead():
    result = plan(RAW, Observed((), "heartbeats_default"), now=NOW, ahead=3 * DAY)
    assert names(result.creates) == [
        "heartbeats_p20260311",
        "heartbeats_p20260312",
        "heartbeats_p20260313",
        "heartbeats_p20260314",
    ]
    assert (result.creates[0].lower, result.creates[0].upper) == (at(11), at(12))
    assert (result.drops, result.purge) == ((), None)


def test_a_second_run_with_the_partitions_there_does_nothing():
    observed = Observed(daily(4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14), "heartbeats_default")
    assert plan(RAW, observed, now=NOW, ahead=3 * DAY).empty


def test_partitions_wholly_before_the_retention_are_dropped_oldest_first():
    observed = Observed(daily(2, 1, 3, 4, 11, 12, 13, 14), "heartbeats_default")
    result = plan(RAW, observed, now=NOW, ahead=3 * DAY)
    # now - 7 days is 4 March 15:42: the day holding it starts the expiry and is kept.
    assert result.expiry == at(4)
    assert names(result.drops) == [
        "heartbeats_p20260301",
        "heartbeats_p20260302",
        "heartbeats_p20260303",
    ]
    assert result.creates == ()


def test_a_partition_without_an_upper_bound_is_never_dropped():
    observed = Observed((Partition("heartbeats_old", None, None),), None)
    result = plan(RAW, observed, now=NOW, ahead=DAY)
    assert result.drops == ()
    assert result.creates == (), "MINVALUE to MAXVALUE leaves no gap"


def test_strays_in_the_default_get_their_own_partition_unless_expired_then_are_purged():
    observed = Observed(
        daily(11, 12),
        "heartbeats_default",
        strays=(at(1, 5), at(6, 22), at(20, 3)),  # expired, kept, beyond the days ahead
    )
    result = plan(RAW, observed, now=NOW, ahead=DAY)
    assert names(result.creates) == ["heartbeats_p20260306", "heartbeats_p20260320"]
    assert result.purge is not None
    assert (result.purge.default, result.purge.before) == ("heartbeats_default", at(4))


def test_no_purge_without_a_default_partition_or_expired_strays():
    observed = Observed(daily(11, 12), "heartbeats_default", strays=(at(11, 1),))
    assert plan(RAW, observed, now=NOW, ahead=DAY).purge is None


def test_a_changed_interval_fills_only_the_gaps_so_partitions_never_overlap():
    hourly = Managed("heartbeats", "ts", "hour", timedelta(days=7))
    observed = Observed(daily(11), "heartbeats_default")
    result = plan(hourly, observed, now=NOW, ahead=timedelta(hours=10))
    # 15:00 today to 01:00 tomorrow: today is covered, so hours from midnight on.
    assert names(result.creates) == ["heartbeats_p20260312", "heartbeats_p20260312_0100"]
    weekly = Managed("heartbeats", "ts", "week", timedelta(days=28))
    result = plan(weekly, Observed(daily(9, 10, 11), None), now=NOW, ahead=DAY)
    assert [(c.lower, c.upper) for c in result.creates] == [(at(12), at(16))]


def test_gaps_are_what_no_partition_covers():
    taken = [Partition("a", at(2), at(3)), Partition("b", at(5), None)]
    assert gaps(at(1), at(7), taken) == [(at(1), at(2)), (at(3), at(5))]
    assert gaps(at(5), at(6), taken) == []


def test_expiry_keeps_at_least_the_retention():
    assert expiry(NOW, "day", timedelta(days=7)) == at(4)
    assert expiry(NOW, "hour", timedelta(days=7)) == datetime(2026, 3, 4, 15, tzinfo=UTC)
    assert NOW - expiry(NOW, "week", timedelta(days=7)) >= timedelta(days=7)


def test_pending_minutes_are_rolled_up_in_spans_of_at_most_ten_minutes():
    base = datetime(2026, 3, 11, 10, 0, tzinfo=UTC)
    minutes = [base + timedelta(minutes=m) for m in (0, 1, 1, 9, 10, 30, 31)] + [base - DAY]
    assert rollup_chunks(minutes) == [
        (base - DAY, base - DAY + timedelta(minutes=1)),
        (base, base + timedelta(minutes=10)),
        (base + timedelta(minutes=10), base + timedelta(minutes=11)),
        (base + timedelta(minutes=30), base + timedelta(minutes=32)),
    ]
    assert rollup_chunks([]) == []


def test_pending_hours_are_rolled_up_in_spans_of_at_most_two_hours():
    from heartbeat.maintenance import HOUR, HOURLY_ROLLUP_SPAN

    base = datetime(2026, 3, 11, 10, 0, tzinfo=UTC)
    hours = [base + timedelta(hours=h) for h in (0, 1, 1, 2, 5)]
    assert rollup_chunks(hours, HOURLY_ROLLUP_SPAN, HOUR) == [
        (base, base + timedelta(hours=2)),
        (base + timedelta(hours=2), base + timedelta(hours=3)),
        (base + timedelta(hours=5), base + timedelta(hours=6)),
    ]


def test_only_the_hours_that_are_over_are_rolled_up():
    from heartbeat.maintenance import ended_hours

    now = datetime(2026, 3, 11, 10, 59, 59, tzinfo=UTC)
    hours = [now.replace(hour=h, minute=0, second=0) for h in (8, 9, 10, 11)]
    assert ended_hours(hours, now) == hours[:2]
    assert ended_hours(hours, now + timedelta(seconds=1)) == hours[:3]


def test_hourly_rollups_are_kept_by_the_week_for_their_own_retention():
    from heartbeat.maintain import managed_tables
    from heartbeat.settings import Settings

    settings = Settings(_env_file=None, hourly_rollup_retention_days=400)  # type: ignore[call-arg]
    raw, minutes, hours = managed_tables(settings)
    assert (hours.table, hours.column, hours.interval) == ("heartbeat_hours", "hour", "week")
    assert hours.retention == timedelta(days=400) > minutes.retention > raw.retention


def test_a_table_name_that_is_not_a_plain_identifier_is_refused():
    with pytest.raises(ValueError, match="plain"):
        Managed('heartbeats"; DROP TABLE x; --', "ts", "day", DAY)


def test_creating_moves_the_defaults_rows_under_a_lock_then_attaches_with_the_bounds():
    observed = Observed((), "heartbeats_default")
    (step,) = plan(RAW, observed, now=NOW, ahead=timedelta(hours=1)).creates
    statements = [text for text, _ in create(step, "heartbeats_default")]
    assert statements[0] == "LOCK TABLE heartbeats_default IN ACCESS EXCLUSIVE MODE"
    assert statements[3].startswith("WITH moved AS (DELETE FROM heartbeats_default")
    assert statements[4] == (
        "ALTER TABLE heartbeats ATTACH PARTITION heartbeats_p20260311 FOR VALUES FROM"
        f" ({literal(at(11))}) TO ({literal(at(12))})"
    )
    assert literal(at(11)) == "'2026-03-11T00:00:00+00:00'"


def test_a_run_reports_what_it_did_nothing_or_that_another_run_had_the_lock():
    from heartbeat.maintain import Report

    assert Report().lines() == ["nothing to do"]
    assert Report(skipped=True).lines() == ["another `heartbeat maintain` is running; nothing done"]
    report = Report(done=["created x"], failed=["drop y: lock timeout"])
    assert report.lines() == ["created x", "not done: drop y: lock timeout"]


@pytest.mark.parametrize(
    ("window", "source"),
    [
        (timedelta(minutes=5), "heartbeats"),
        (timedelta(hours=1), "heartbeats"),
        (timedelta(hours=1, seconds=1), "heartbeat_"),
        (timedelta(days=30), "heartbeat_"),
    ],
)
def test_stats_read_the_readings_up_to_an_hour_and_the_rollups_beyond(window, source):
    from heartbeat.stats import queries

    totals, per_customer = queries(window)
    for statement in (totals, per_customer):
        read = "heartbeats" if "FROM heartbeats\n" in statement else "heartbeat_"
        assert read == source


def test_stats_per_customer_over_the_rollups_read_minutes_to_the_first_whole_hour_then_hours():
    from heartbeat.stats import queries

    _, per_customer = queries(timedelta(hours=24))
    assert "FROM heartbeat_hours_live" in per_customer
    assert "minute < (date_bin('1 hour'" in per_customer
    assert "hour >= (date_bin('1 hour'" in per_customer
