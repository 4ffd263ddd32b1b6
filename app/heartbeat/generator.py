"""Synthetic heart-rate readings, deterministic for a given seed.

The model: each customer has a resting baseline drawn once from 60-90 bpm and
a phase for a daily variation of +-15 bpm (a sine over the UTC day); each
reading has a ``spike_probability`` (4 % by default) chance of a +-40 bpm spike;
the result is clamped to 25-230 bpm, so a few readings fall outside the valid
30-220 band on purpose and exercise the dead-letter path.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

BASELINE_RANGE = (60.0, 90.0)
DAILY_AMPLITUDE = 15.0
SPIKE_BPM = 40.0
CLAMP_RANGE = (25, 230)
SECONDS_PER_DAY = 86_400


def customer_slice(customers: int, shards: int, index: int, first_customer: int = 1) -> range:
    """The customers shard ``index`` of ``shards`` simulates.

    Slices are contiguous, disjoint, together exactly ``customers``, and differ in
    size by at most one (the first ``customers % shards`` shards take one more).
    """
    if customers < 1 or shards < 1:
        raise ValueError("customers and shards must be at least 1")
    if not 0 <= index < shards:
        raise ValueError(f"shard index {index} must be within 0..{shards - 1}")
    if shards > customers:
        raise ValueError(f"{shards} shards cannot share {customers} customers")
    base, extra = divmod(customers, shards)
    start = first_customer + index * base + min(index, extra)
    return range(start, start + base + (1 if index < extra else 0))


@dataclass(frozen=True, slots=True)
class GeneratedReading:
    customer_id: int
    timestamp: datetime
    heart_rate: int

    def key(self) -> bytes:
        return str(self.customer_id).encode()

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "customer_id": self.customer_id,
                "timestamp": self.timestamp.isoformat(timespec="microseconds"),
                "heart_rate": self.heart_rate,
            },
            separators=(",", ":"),
        ).encode()


@dataclass(frozen=True, slots=True)
class _Profile:
    baseline: float
    phase: float


class ReadingGenerator:
    """Readings for customers ``first_customer .. first_customer + customers - 1``."""

    def __init__(
        self,
        *,
        customers: int,
        first_customer: int = 1,
        seed: int | None = None,
        spike_probability: float = 0.04,
    ) -> None:
        if customers < 1:
            raise ValueError("customers must be at least 1")
        if first_customer < 1:
            raise ValueError("first_customer must be at least 1")
        if not 0.0 <= spike_probability <= 1.0:
            raise ValueError("spike_probability must be within 0..1")
        self.first_customer = first_customer
        self.customers = customers
        self.spike_probability = spike_probability
        self._seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
        self._rng = random.Random(self._seed)
        self._profiles: dict[int, _Profile] = {}

    @property
    def customer_ids(self) -> range:
        return range(self.first_customer, self.first_customer + self.customers)

    def profile(self, customer_id: int) -> _Profile:
        profile = self._profiles.get(customer_id)
        if profile is None:
            # Seeded by (seed, customer) so a customer's baseline does not depend
            # on which replica or in which order it is simulated.
            rng = random.Random(f"{self._seed}:{customer_id}")
            profile = _Profile(rng.uniform(*BASELINE_RANGE), rng.uniform(0.0, 2 * math.pi))
            self._profiles[customer_id] = profile
        return profile

    def heart_rate(self, customer_id: int, at: datetime) -> int:
        profile = self.profile(customer_id)
        seconds = at.timestamp() % SECONDS_PER_DAY
        bpm = profile.baseline + DAILY_AMPLITUDE * math.sin(
            2 * math.pi * seconds / SECONDS_PER_DAY + profile.phase
        )
        if self._rng.random() < self.spike_probability:
            bpm += SPIKE_BPM if self._rng.random() < 0.5 else -SPIKE_BPM
        low, high = CLAMP_RANGE
        return max(low, min(high, round(bpm)))

    def reading(self, customer_id: int, at: datetime) -> GeneratedReading:
        return GeneratedReading(customer_id, at, self.heart_rate(customer_id, at))

    def rounds(
        self, start: datetime | None = None, step: timedelta | None = None
    ) -> Iterator[GeneratedReading]:
        """Endless readings, one per customer per round.

        Without ``step`` each round is stamped with the wall clock, kept strictly
        increasing so no two readings of a customer share a timestamp; with
        ``step`` round *n* is stamped ``start + n * step`` (reproducible data).
        """
        base = start or datetime.now(UTC)
        last = base - timedelta(microseconds=1)
        n = 0
        while True:
            if step is None:
                at = max(datetime.now(UTC), last + timedelta(microseconds=1))
            else:
                at = base + n * step
            last = at
            n += 1
            for customer_id in self.customer_ids:
                yield self.reading(customer_id, at)
