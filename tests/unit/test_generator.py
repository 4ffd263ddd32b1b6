"""The generator's model: its statistics over many readings, determinism, customer slices."""

from __future__ import annotations

import itertools
import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from statistics import mean

import pytest

from heartbeat.generator import (
    BASELINE_RANGE,
    CLAMP_RANGE,
    DAILY_AMPLITUDE,
    LOW_SHARE_OF_ANOMALIES,
    SECONDS_PER_DAY,
    GeneratedReading,
    ReadingGenerator,
    customer_slice,
)
from heartbeat.validation import HIGH_BPM, LOW_BPM, VALID_MAX_BPM, VALID_MIN_BPM, validate

START = datetime(2026, 3, 1, tzinfo=UTC)


def sample(generator: ReadingGenerator, rounds: int, step: float = 10.0) -> list[GeneratedReading]:
    readings = generator.rounds(start=START, step=timedelta(seconds=step))
    return [next(readings) for _ in range(rounds * generator.customers)]


def kind(heart_rate: int) -> str:
    """What the consumer makes of a heart rate."""
    if not VALID_MIN_BPM <= heart_rate <= VALID_MAX_BPM:
        return "invalid"
    if heart_rate > HIGH_BPM:
        return "high"
    return "low" if heart_rate < LOW_BPM else "normal"


@dataclass
class Fleet:
    generator: ReadingGenerator
    readings: list[GeneratedReading]

    def share(self, what: str) -> float:
        return sum(1 for r in self.readings if kind(r.heart_rate) == what) / len(self.readings)

    def by_customer(self) -> dict[int, list[int]]:
        found: dict[int, list[int]] = defaultdict(list)
        for r in self.readings:
            found[r.customer_id].append(r.heart_rate)
        return found


ANOMALY_RATE, INVALID_RATE = 0.05, 0.01


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    """200,000 readings: 400 customers read every 30 s for a little over 4 hours."""
    generator = ReadingGenerator(
        customers=400, seed=20, anomaly_rate=ANOMALY_RATE, invalid_rate=INVALID_RATE
    )
    return Fleet(generator, sample(generator, 500, step=30))


def test_high_and_low_readings_take_the_configured_anomaly_rate(fleet):
    valid = 1 - INVALID_RATE
    high = ANOMALY_RATE * (1 - LOW_SHARE_OF_ANOMALIES) * valid
    low = ANOMALY_RATE * LOW_SHARE_OF_ANOMALIES * valid
    assert fleet.share("high") == pytest.approx(high, rel=0.2)
    assert fleet.share("low") == pytest.approx(low, rel=0.35)
    assert fleet.share("high") > 2 * fleet.share("low")  # bradycardia is the rarer


def test_invalid_readings_take_the_configured_share_just_outside_the_valid_band(fleet):
    assert fleet.share("invalid") == pytest.approx(INVALID_RATE, rel=0.15)
    invalid = {r.heart_rate for r in fleet.readings if kind(r.heart_rate) == "invalid"}
    assert invalid <= set(range(CLAMP_RANGE[0], VALID_MIN_BPM)) | set(
        range(VALID_MAX_BPM + 1, CLAMP_RANGE[1] + 1)
    )
    assert min(invalid) < VALID_MIN_BPM < VALID_MAX_BPM < max(invalid)  # both sides


def test_every_customer_varies_within_a_realistic_spread(fleet):
    spreads = [
        statistics.pstdev([h for h in rates if kind(h) == "normal"])
        for rates in fleet.by_customer().values()
    ]
    assert min(spreads) > 2  # no customer at one constant rate
    assert 5 < statistics.median(spreads) < 25
    assert max(spreads) < 35


def test_readings_30_s_apart_differ_by_a_few_bpm_not_by_chance(fleet):
    steps = []
    for rates in fleet.by_customer().values():
        normal = [h for h in rates if kind(h) == "normal"]
        steps += [abs(b - a) for a, b in itertools.pairwise(normal)]
    assert 1 <= statistics.median(steps) <= 6
    assert Counter(steps)[0] < 0.25 * len(steps)


def test_flagged_episodes_last_minutes(fleet):
    runs = []
    for rates in fleet.by_customer().values():
        length = 0
        for h in rates:
            if kind(h) == "high":
                length += 1
            elif length:
                runs.append(length)
                length = 0
    assert len(runs) > 100
    assert statistics.median(runs) * 30 >= 120  # readings are 30 s apart


def test_customers_have_their_own_anomaly_rates_around_the_configured_one(fleet):
    own = {c: fleet.generator.profile(c).anomaly_rate for c in fleet.generator.customer_ids}
    assert mean(own.values()) == pytest.approx(ANOMALY_RATE, rel=0.1)
    assert min(own.values()) >= 0
    assert max(own.values()) <= 2 * ANOMALY_RATE
    ranked = sorted(own, key=own.get)
    quarter = len(ranked) // 4
    rates = fleet.by_customer()

    def flagged(customers: list[int]) -> float:
        values = [h for c in customers for h in rates[c]]
        return sum(1 for h in values if kind(h) in ("high", "low")) / len(values)

    assert flagged(ranked[-quarter:]) > 3 * flagged(ranked[:quarter])


def test_the_shares_hold_when_each_customer_is_read_rarely():
    generator = ReadingGenerator(customers=400, seed=21, anomaly_rate=0.05, invalid_rate=0)
    readings = Fleet(generator, sample(generator, 250, step=120))
    flagged = readings.share("high") + readings.share("low")
    assert flagged == pytest.approx(0.05, rel=0.2)


def test_no_anomaly_rate_means_no_flagged_reading_and_a_rate_of_one_flags_all():
    calm = Fleet(g := ReadingGenerator(customers=50, seed=22, anomaly_rate=0), sample(g, 400))
    assert calm.share("high") == calm.share("low") == 0
    ill = ReadingGenerator(customers=20, seed=22, anomaly_rate=1, invalid_rate=0)
    flagged = Fleet(ill, sample(ill, 200, step=30))
    assert flagged.share("high") + flagged.share("low") > 0.99


def test_movement_artifacts_are_40_bpm_jumps_that_never_make_a_flag_by_themselves():
    def far_from_the_daily_curve(spike_probability: float) -> float:
        generator = ReadingGenerator(
            customers=50,
            seed=23,
            anomaly_rate=0,
            invalid_rate=0,
            spike_probability=spike_probability,
        )
        readings = sample(generator, 200)
        assert {kind(r.heart_rate) for r in readings} == {"normal"}
        far = 0
        for r in readings:
            profile = generator.profile(r.customer_id)
            seconds = r.timestamp.timestamp() % SECONDS_PER_DAY
            curve = profile.baseline + DAILY_AMPLITUDE * math.sin(
                2 * math.pi * seconds / SECONDS_PER_DAY + profile.phase
            )
            far += abs(r.heart_rate - curve) >= 25
        return far / len(readings)

    assert far_from_the_daily_curve(0.0) < 0.2  # activity episodes only
    assert far_from_the_daily_curve(1.0) > 0.6


def test_same_seed_gives_the_same_readings_and_another_seed_does_not():
    a = sample(ReadingGenerator(customers=20, seed=1), 500)
    b = sample(ReadingGenerator(customers=20, seed=1), 500)
    c = sample(ReadingGenerator(customers=20, seed=2), 500)
    assert a == b
    assert [r.heart_rate for r in a] != [r.heart_rate for r in c]


def test_baselines_lie_within_60_to_90_bpm():
    generator = ReadingGenerator(customers=500, seed=3)
    baselines = [generator.profile(c).baseline for c in generator.customer_ids]
    assert all(BASELINE_RANGE[0] <= b <= BASELINE_RANGE[1] for b in baselines)
    assert 70 < mean(baselines) < 80


def test_hourly_means_follow_the_daily_variation_around_the_baseline():
    generator = ReadingGenerator(customers=1, seed=5, anomaly_rate=0, spike_probability=0)
    readings = sample(generator, 24 * 60, step=60)  # a day, a reading a minute
    profile = generator.profile(1)
    hourly = [mean(r.heart_rate for r in readings[h * 60 : (h + 1) * 60]) for h in range(24)]
    near = 0
    for hour, value in enumerate(hourly):
        seconds = (START + timedelta(hours=hour, minutes=30)).timestamp() % SECONDS_PER_DAY
        curve = profile.baseline + DAILY_AMPLITUDE * math.sin(
            2 * math.pi * seconds / SECONDS_PER_DAY + profile.phase
        )
        near += abs(value - curve) < 10
    assert near >= 18  # the others hold an activity episode
    assert max(hourly) - min(hourly) > 20


def test_readings_stay_within_the_clamp_range(fleet):
    rates = [r.heart_rate for r in fleet.readings]
    assert min(rates) >= CLAMP_RANGE[0]
    assert max(rates) <= CLAMP_RANGE[1]


def test_customer_range_is_disjoint_between_replicas_and_profiles_do_not_depend_on_it():
    first = ReadingGenerator(customers=10, first_customer=1, seed=7)
    second = ReadingGenerator(customers=10, first_customer=11, seed=7)
    assert set(first.customer_ids).isdisjoint(second.customer_ids)
    whole = ReadingGenerator(customers=20, seed=7)
    assert whole.profile(15) == second.profile(15)


def test_wall_clock_rounds_never_repeat_a_customers_timestamp():
    readings = ReadingGenerator(customers=3, seed=8).rounds()
    seen = [next(readings) for _ in range(3000)]
    keys = {(r.customer_id, r.timestamp) for r in seen}
    assert len(keys) == len(seen)


def test_generated_json_passes_validation():
    reading = ReadingGenerator(customers=1, seed=9, invalid_rate=0).reading(1, START)
    verdict = validate(reading.to_json(), now=START, max_future_skew=timedelta(0))
    assert verdict.heart_rate == reading.heart_rate  # type: ignore[union-attr]
    assert reading.key() == b"1"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"customers": 0},
        {"customers": 1, "first_customer": 0},
        {"customers": 1, "spike_probability": 1.5},
        {"customers": 1, "anomaly_rate": 1.01},
        {"customers": 1, "invalid_rate": -0.1},
    ],
)
def test_impossible_generator_arguments_are_refused(kwargs):
    with pytest.raises(ValueError, match="must be"):
        ReadingGenerator(**kwargs)


@pytest.mark.parametrize("customers", [1, 2, 3, 7, 10, 64, 101])
@pytest.mark.parametrize("shards", [1, 2, 3, 4, 7, 10])
def test_customer_slices_are_disjoint_contiguous_balanced_and_complete(customers, shards):
    if shards > customers:
        with pytest.raises(ValueError, match="cannot share"):
            customer_slice(customers, shards, 0)
        return
    slices = [customer_slice(customers, shards, i, first_customer=5) for i in range(shards)]
    covered = [c for s in slices for c in s]
    assert covered == list(range(5, 5 + customers))
    sizes = {len(s) for s in slices}
    assert max(sizes) - min(sizes) <= 1
    assert min(sizes) >= 1


def test_shard_index_outside_the_count_is_refused():
    with pytest.raises(ValueError, match="within"):
        customer_slice(10, 2, 2)
