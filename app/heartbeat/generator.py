"""Synthetic heart-rate readings, deterministic for a given seed.

The model, per customer:

* a resting baseline drawn once from 60-90 bpm and a daily variation of +-15 bpm (a sine
  over the UTC day, with a phase of the customer's own);
* beat-to-beat variation: a slowly wandering offset (an AR(1) process, about 3 bpm, that
  forgets its past over some 20 s) plus about 1 bpm of measurement noise, so no two
  minutes of a customer look alike;
* activity episodes that raise the rate by 20-55 bpm for minutes (15 % of the time), ramping
  in and out over a minute;
* episodes the consumer flags: intense activity above 180 bpm (``high``) and, a quarter as
  often, bradycardia below 45 bpm (``low``), a few minutes each; together they take the
  customer's own anomaly rate of its readings, drawn once from the widest range centred on
  ``anomaly_rate`` within 0 and 1 (0 to twice it, up to 0.5), so some customers are flagged
  far more often than others;
* a ``spike_probability`` chance per reading of a +-40 bpm movement artifact, outside the
  flagged episodes and kept within 46-178 bpm, so it never makes a flag by itself;
* an ``invalid_rate`` share of sensor faults: readings outside the valid 30-220 bpm band
  (25-29 or 221-230), which go to the dead-letter topic.

Episodes follow each customer's own clock (the readings' timestamps), not the number of
readings, so a customer read once a second and one read once a minute spend the same
share of their time in each. A reading's randomness comes from one generator seeded once,
so the same seed, customers and timestamps give the same readings.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from heartbeat.validation import HIGH_BPM, LOW_BPM, VALID_MAX_BPM, VALID_MIN_BPM

BASELINE_RANGE = (60.0, 90.0)
DAILY_AMPLITUDE = 15.0
SPIKE_BPM = 40.0
CLAMP_RANGE = (25, 230)
SECONDS_PER_DAY = 86_400

BEAT_SIGMA_BPM = 3.0  # spread of the wandering offset
BEAT_MEMORY_SECONDS = 20.0  # how fast it forgets
NOISE_SIGMA_BPM = 1.0  # measurement noise of each reading
RAMP_SECONDS = 60.0  # an activity episode ramps in and out over this

# Bands each state stays in, so that a reading's flag is the state's, never an accident
# of noise: unflagged readings stay between the thresholds, flagged ones beyond them.
NORMAL_BAND = (LOW_BPM + 1, HIGH_BPM - 2)
HIGH_BAND = (HIGH_BPM + 1, VALID_MAX_BPM - 1)
LOW_BAND = (VALID_MIN_BPM + 1, LOW_BPM - 1)


@dataclass(frozen=True, slots=True)
class Episode:
    """A kind of episode: its share of time is set elsewhere, its shape here."""

    name: str
    mean_seconds: float  # mean duration
    min_seconds: float  # shortest duration
    level: tuple[float, float]  # activity: bpm added; high and low: bpm the rate holds


REST = Episode("rest", 0.0, 0.0, (0.0, 0.0))
ACTIVITY = Episode("activity", 900.0, 180.0, (20.0, 55.0))
HIGH = Episode("high", 360.0, 120.0, (184.0, 206.0))
LOW = Episode("low", 600.0, 180.0, (37.0, 43.0))
ACTIVITY_SHARE = 0.15
LOW_SHARE_OF_ANOMALIES = 0.2  # bradycardia is a fifth of the flagged time, activity the rest


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
    anomaly_rate: float  # this customer's share of flagged readings
    shares: tuple[tuple[Episode, float], ...]  # share of time in each episode kind
    starts: tuple[tuple[Episode, float], ...]  # episodes starting per second of rest
    start_rate: float  # their sum


def episode_shares(anomaly_rate: float) -> tuple[tuple[Episode, float], ...]:
    """Share of time in activity, high and low episodes for a customer's anomaly rate."""
    low = anomaly_rate * LOW_SHARE_OF_ANOMALIES
    high = anomaly_rate - low
    activity = min(ACTIVITY_SHARE, (1.0 - anomaly_rate) / 2)
    return ((ACTIVITY, activity), (HIGH, high), (LOW, low))


def start_rates(shares: tuple[tuple[Episode, float], ...]) -> tuple[tuple[Episode, float], ...]:
    """How often each episode starts per second of rest, for it to take its share of time.

    Resting and episodes alternate, so an episode kind's share over the rest's share is
    its start rate times its mean duration.
    """
    rest = max(1.0 - sum(share for _, share in shares), 1e-9)
    return tuple((episode, share / (episode.mean_seconds * rest)) for episode, share in shares)


def _choose(options: tuple[tuple[Episode, float], ...], pick: float, other: Episode) -> Episode:
    """The option whose span of the weights, laid end to end, holds ``pick``; else ``other``."""
    for option, weight in options:
        if pick < weight:
            return option
        pick -= weight
    return other


class _State:
    """Where a customer is: its episode, the wandering offset, the last reading's time."""

    __slots__ = ("ends", "episode", "level", "noise", "seen", "starts")

    def __init__(self) -> None:
        self.episode = REST
        self.starts = self.ends = self.level = self.noise = 0.0
        self.seen: float | None = None


class ReadingGenerator:
    """Readings for customers ``first_customer .. first_customer + customers - 1``."""

    def __init__(
        self,
        *,
        customers: int,
        first_customer: int = 1,
        seed: int | None = None,
        anomaly_rate: float = 0.04,
        invalid_rate: float = 0.005,
        spike_probability: float = 0.04,
    ) -> None:
        if customers < 1:
            raise ValueError("customers must be at least 1")
        if first_customer < 1:
            raise ValueError("first_customer must be at least 1")
        for name, value in (
            ("anomaly_rate", anomaly_rate),
            ("invalid_rate", invalid_rate),
            ("spike_probability", spike_probability),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1")
        self.first_customer = first_customer
        self.customers = customers
        self.anomaly_rate = anomaly_rate
        self.invalid_rate = invalid_rate
        self.spike_probability = spike_probability
        self._seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
        self._rng = random.Random(self._seed)
        self._profiles: dict[int, _Profile] = {}
        self._states: dict[int, _State] = {}

    @property
    def customer_ids(self) -> range:
        return range(self.first_customer, self.first_customer + self.customers)

    def profile(self, customer_id: int) -> _Profile:
        profile = self._profiles.get(customer_id)
        if profile is None:
            # Seeded by (seed, customer) so a customer's baseline and anomaly rate do not
            # depend on which replica or in which order it is simulated.
            rng = random.Random(f"{self._seed}:{customer_id}")
            baseline = rng.uniform(*BASELINE_RANGE)
            phase = rng.uniform(0.0, 2 * math.pi)
            spread = min(self.anomaly_rate, 1.0 - self.anomaly_rate)
            rate = rng.uniform(self.anomaly_rate - spread, self.anomaly_rate + spread)
            shares = episode_shares(rate)
            starts = start_rates(shares)
            total = sum(r for _, r in starts)
            profile = _Profile(baseline, phase, rate, shares, starts, total)
            self._profiles[customer_id] = profile
        return profile

    def heart_rate(self, customer_id: int, at: datetime) -> int:
        profile = self.profile(customer_id)
        state = self._states.get(customer_id)
        if state is None:
            state = self._states[customer_id] = _State()
        now = at.timestamp()
        self._advance(profile, state, now)
        bpm = self._bpm(profile, state, now)
        if self._rng.random() < self.invalid_rate:
            # A sensor fault: a value just outside the valid band, on either side.
            if self._rng.random() < 0.5:
                bpm = self._rng.uniform(CLAMP_RANGE[0], VALID_MIN_BPM - 0.51)
            else:
                bpm = self._rng.uniform(VALID_MAX_BPM + 0.51, CLAMP_RANGE[1])
        return round(bpm)

    def _advance(self, profile: _Profile, state: _State, now: float) -> None:
        """Move the customer's episode and wandering offset on to ``now``."""
        rng = self._rng
        if state.seen is None:  # the first reading: somewhere in the customer's long run
            state.noise = rng.gauss(0.0, BEAT_SIGMA_BPM)
            episode = _choose(profile.shares, rng.random(), REST)
            if episode is not REST:
                self._start(state, episode, now, rng.expovariate(1.0 / episode.mean_seconds))
            state.seen = now
            return
        elapsed = max(0.0, now - state.seen)
        state.seen = now
        keep = math.exp(-elapsed / BEAT_MEMORY_SECONDS)
        state.noise = keep * state.noise + BEAT_SIGMA_BPM * math.sqrt(1 - keep * keep) * (
            rng.gauss(0.0, 1.0)
        )
        if state.episode is not REST:
            if now < state.ends:
                return
            elapsed = now - state.ends  # the rest of the interval was spent resting
            state.episode = REST
        total = profile.start_rate
        if total <= 0 or rng.random() >= -math.expm1(-total * elapsed):
            return
        episode = _choose(profile.starts, rng.random() * total, profile.starts[-1][0])
        extra = episode.mean_seconds - episode.min_seconds
        duration = episode.min_seconds + rng.expovariate(1.0 / extra)
        # It began at some instant since the last look, not now: readings far apart
        # would otherwise see every episode half an interval too long.
        began = now - rng.random() * elapsed
        if began + duration > now:
            self._start(state, episode, began, duration)

    def _start(self, state: _State, episode: Episode, now: float, duration: float) -> None:
        state.episode = episode
        state.starts, state.ends = now, now + duration
        state.level = self._rng.uniform(*episode.level)

    def _bpm(self, profile: _Profile, state: _State, now: float) -> float:
        wander = state.noise + self._rng.gauss(0.0, NOISE_SIGMA_BPM)
        if state.episode is HIGH:
            return min(max(state.level + wander, HIGH_BAND[0]), HIGH_BAND[1])
        if state.episode is LOW:
            return min(max(state.level + wander / 2, LOW_BAND[0]), LOW_BAND[1])
        seconds = now % SECONDS_PER_DAY
        bpm = profile.baseline + wander
        bpm += DAILY_AMPLITUDE * math.sin(2 * math.pi * seconds / SECONDS_PER_DAY + profile.phase)
        if state.episode is ACTIVITY:
            ramp = min(1.0, (now - state.starts) / RAMP_SECONDS, (state.ends - now) / RAMP_SECONDS)
            bpm += state.level * max(0.0, ramp)
        if self._rng.random() < self.spike_probability:
            bpm += SPIKE_BPM if self._rng.random() < 0.5 else -SPIKE_BPM
        return min(max(bpm, NORMAL_BAND[0]), NORMAL_BAND[1])

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
