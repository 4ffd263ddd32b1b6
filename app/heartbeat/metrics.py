"""Prometheus metrics of the pipeline.

Names share the ``heartbeat_`` prefix, use base units, counters end ``_total``
and durations ``_seconds``. Labels are bounded: reasons and anomaly kinds are
known in advance (and created at zero so their series exist from the start),
partitions are few; a customer id is never a label.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
)
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from heartbeat import __version__
from heartbeat.validation import Anomaly, Reason

BATCH_SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 50000)
DB_WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
DEPENDENCIES = ("kafka", "postgres")


def new_registry(*, process_collectors: bool = True) -> CollectorRegistry:
    """A registry for one process; tests build their own without process collectors."""
    registry = CollectorRegistry(auto_describe=True)
    if process_collectors:
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
    return registry


def register_build_info(registry: CollectorRegistry, component: str) -> None:
    """heartbeat_build_info{version, component}: which process and version answers."""
    Info("heartbeat_build", "Version of the running heartbeat process.", registry=registry).info(
        {"version": __version__, "component": component}
    )


class BatchHistogram(Collector):
    """A histogram observed a whole batch at a time: one call per batch, not per value.

    It exposes the same series as ``prometheus_client.Histogram`` (``_bucket{le}``,
    ``_count``, ``_sum``, ``_created``).
    """

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = tuple(float(b) for b in buckets)
        self._counts = [0] * (len(self._bounds) + 1)  # per bucket, the last is +Inf
        self._sum = 0.0
        self._created = time.time()
        self._lock = threading.Lock()
        registry.register(self)

    @property
    def bounds(self) -> tuple[float, ...]:
        return self._bounds

    def observe_counts(self, counts: Sequence[int], total: float) -> None:
        """Add ``counts[i]`` values to bucket ``i`` (not cumulative, +Inf last) and ``total``."""
        if len(counts) != len(self._counts):
            raise ValueError(f"{len(counts)} counts for {len(self._counts)} buckets")
        with self._lock:
            for i, count in enumerate(counts):
                self._counts[i] += count
            self._sum += total

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, buckets = 0, []
        for bound, count in zip((*self._bounds, float("inf")), counts, strict=True):
            cumulative += count
            buckets.append((_le(bound), cumulative))
        family = HistogramMetricFamily(
            self._name,
            self._documentation,
            buckets=buckets,
            sum_value=total,
        )
        family.add_sample(self._name + "_created", {}, self._created)
        yield family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def ages(
    sorted_micros: Sequence[int], now_micros: int, bounds: Sequence[float]
) -> tuple[list[int], float]:
    """Histogram counts (per bucket, +Inf last) and sum, in seconds, of ``now - t`` for
    each instant ``t`` (microseconds, sorted); an instant after ``now`` counts as 0."""
    n = len(sorted_micros)
    past = bisect_right(sorted_micros, now_micros)  # those at or before now
    counts = []
    below = 0
    for bound in bounds:
        # age <= bound  <=>  t >= now - bound; the future ones (age 0) are always in.
        within = n - bisect_left(sorted_micros, now_micros - round(bound * 1_000_000))
        counts.append(within - below)
        below = within
    counts.append(n - below)
    total = (past * now_micros - sum(sorted_micros[:past])) / 1_000_000
    return counts, total


class _Common:
    def __init__(self, registry: CollectorRegistry, component: str) -> None:
        register_build_info(registry, component)
        self.dependency_up = Gauge(
            "heartbeat_dependency_up",
            "1 while the process can reach the dependency, 0 while it retries.",
            ["dependency"],
            registry=registry,
        )
        self.retries = Counter(
            "heartbeat_dependency_retries_total",
            "Retries after a dependency failed (each waits with capped exponential backoff).",
            ["dependency"],
            registry=registry,
        )
        for dependency in DEPENDENCIES:
            self.retries.labels(dependency)


class ProducerMetrics(_Common):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry, "producer")
        self.produced = Counter(
            "heartbeat_produced_total",
            "Readings the broker acknowledged.",
            registry=registry,
        )
        self.produce_errors = Counter(
            "heartbeat_produce_errors_total",
            "Readings the broker did not acknowledge (delivery failed).",
            registry=registry,
        )


class ConsumerMetrics(_Common):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry, "consumer")
        self.consumed = Counter(
            "heartbeat_consumed_total", "Messages read from Kafka.", registry=registry
        )
        self.stored = Counter(
            "heartbeat_stored_total", "Readings newly stored in PostgreSQL.", registry=registry
        )
        self.duplicates = Counter(
            "heartbeat_duplicates_total",
            "Valid readings skipped because the same customer and timestamp was already stored.",
            registry=registry,
        )
        self.rejected = Counter(
            "heartbeat_rejected_total",
            "Messages sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )
        self.anomalies = Counter(
            "heartbeat_anomalies_total",
            "Stored readings flagged as anomalies, by kind.",
            ["kind"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "heartbeat_batch_size",
            "Messages per written batch.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.db_write_seconds = Histogram(
            "heartbeat_db_write_seconds",
            "Time to write one batch and its offsets to PostgreSQL.",
            buckets=DB_WRITE_BUCKETS,
            registry=registry,
        )
        self.event_to_stored_seconds = BatchHistogram(
            "heartbeat_event_to_stored_seconds",
            "From a reading's timestamp to its commit in PostgreSQL.",
            LATENCY_BUCKETS,
            registry,
        )
        self.consumer_lag = Gauge(
            "heartbeat_consumer_lag",
            "Messages in the partition not yet stored by this consumer.",
            ["topic", "partition"],
            registry=registry,
        )
        self.stale_customers = Gauge(
            "heartbeat_stale_customers",
            "Customers seen in the last hour whose newest stored reading is older than "
            "STALE_CUSTOMER_SECONDS (every consumer reports the same figure).",
            registry=registry,
        )
        self.assigned_partitions = Gauge(
            "heartbeat_assigned_partitions",
            "Partitions assigned to this consumer.",
            registry=registry,
        )
        self.dead_letters_refused = Counter(
            "heartbeat_dead_letters_refused_total",
            "Dead letters the broker refused whole (too large even when cut); a minimal "
            "dead letter (reason, source coordinates, sizes) was sent instead.",
            registry=registry,
        )
        self.stalled_partitions = Gauge(
            "heartbeat_consumer_stalled_partitions",
            "Owned partitions with lag that have not advanced for CONSUMER_STALL_SECONDS.",
            registry=registry,
        )
        self.last_progress = Gauge(
            "heartbeat_consumer_last_progress_timestamp_seconds",
            "When the stored position of the partition last advanced (or it was assigned), "
            "Unix time.",
            ["topic", "partition"],
            registry=registry,
        )
        for reason in Reason:
            self.rejected.labels(reason.value)
        for kind in Anomaly:
            self.anomalies.labels(kind.value)
