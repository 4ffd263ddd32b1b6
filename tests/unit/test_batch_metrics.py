"""Per-batch metrics: the event-to-stored histogram observed a batch at a time."""

from heartbeat.metrics import ConsumerMetrics, ages, new_registry

SECOND = 1_000_000


def test_ages_fall_in_their_buckets_and_a_future_instant_counts_as_zero():
    bounds = (0.1, 1.0, 10.0)
    now = 100 * SECOND
    instants = sorted([now - 50_000, now - SECOND, now - 5 * SECOND, now - 60 * SECOND, now + 7])
    counts, total = ages(instants, now, bounds)
    assert counts == [2, 1, 1, 1]  # 0 and 0.05 s; 1 s (le is inclusive); 5 s; 60 s
    assert total == 0.05 + 1 + 5 + 60


def test_a_batch_observed_at_once_reads_as_a_histogram():
    registry = new_registry(process_collectors=False)
    metrics = ConsumerMetrics(registry)
    histogram = metrics.event_to_stored_seconds
    now = 1000 * SECOND
    counts, total = ages([now - 2 * SECOND, now - 20_000], now, histogram.bounds)
    histogram.observe_counts(counts, total)
    histogram.observe_counts(counts, total)

    def sample(suffix: str, **labels: str) -> float | None:
        return registry.get_sample_value(f"heartbeat_event_to_stored_seconds{suffix}", labels)

    assert sample("_count") == 4
    assert sample("_sum") == 2 * (2 + 0.02)
    assert sample("_bucket", le="0.01") == 0
    assert sample("_bucket", le="0.025") == 2
    assert sample("_bucket", le="2.5") == 4
    assert sample("_bucket", le="+Inf") == 4
