"""The generator's model: baselines, daily variation, spikes, clamping, determinism."""

from datetime import UTC, datetime, timedelta
from statistics import mean

import pytest

from heartbeat.generator import BASELINE_RANGE, CLAMP_RANGE, ReadingGenerator, customer_slice
from heartbeat.validation import VALID_MIN_BPM, validate

START = datetime(2026, 3, 1, tzinfo=UTC)


def sample(generator: ReadingGenerator, rounds: int) -> list:
    readings = generator.rounds(start=START, step=timedelta(seconds=10))
    return [next(readings) for _ in range(rounds * generator.customers)]


def test_same_seed_gives_the_same_readings_and_another_seed_does_not():
    a = sample(ReadingGenerator(customers=20, seed=1), 50)
    b = sample(ReadingGenerator(customers=20, seed=1), 50)
    c = sample(ReadingGenerator(customers=20, seed=2), 50)
    assert a == b
    assert [r.heart_rate for r in a] != [r.heart_rate for r in c]


def test_baselines_lie_within_60_to_90_bpm():
    generator = ReadingGenerator(customers=500, seed=3)
    baselines = [generator.profile(c).baseline for c in generator.customer_ids]
    assert all(BASELINE_RANGE[0] <= b <= BASELINE_RANGE[1] for b in baselines)
    assert 70 < mean(baselines) < 80


def test_about_four_percent_of_readings_carry_a_40_bpm_spike():
    generator = ReadingGenerator(customers=50, seed=4, spike_probability=0.04)
    readings = sample(generator, 400)  # 20,000 readings
    unspiked = ReadingGenerator(customers=50, seed=4, spike_probability=0.0)
    calm = {(r.customer_id, r.timestamp): r.heart_rate for r in sample(unspiked, 400)}
    spiked = [r for r in readings if abs(r.heart_rate - calm[(r.customer_id, r.timestamp)]) >= 30]
    share = len(spiked) / len(readings)
    assert 0.03 < share < 0.05


def test_daily_variation_stays_within_15_bpm_of_the_baseline():
    generator = ReadingGenerator(customers=5, seed=5, spike_probability=0.0)
    for customer in generator.customer_ids:
        baseline = generator.profile(customer).baseline
        rates = [generator.heart_rate(customer, START + timedelta(hours=h)) for h in range(24)]
        assert all(abs(rate - baseline) <= 15.5 for rate in rates)
        assert max(rates) - min(rates) > 20  # it does vary over the day


def test_readings_are_clamped_and_a_few_fall_outside_the_valid_range():
    readings = sample(ReadingGenerator(customers=100, seed=6), 300)
    rates = [r.heart_rate for r in readings]
    assert min(rates) >= CLAMP_RANGE[0]
    assert max(rates) <= CLAMP_RANGE[1]
    invalid = sum(1 for rate in rates if rate < VALID_MIN_BPM)
    assert 0 < invalid < len(rates) * 0.02


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
    reading = ReadingGenerator(customers=1, seed=9, spike_probability=0).reading(1, START)
    verdict = validate(reading.to_json(), now=START, max_future_skew=timedelta(0))
    assert verdict.heart_rate == reading.heart_rate  # type: ignore[union-attr]
    assert reading.key() == b"1"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"customers": 0},
        {"customers": 1, "first_customer": 0},
        {"customers": 1, "spike_probability": 1.5},
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
