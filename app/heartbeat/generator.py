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
share of their time in each: a rest's length is drawn when it begins (starts are a Poisson
process over resting time), and the episodes that began and ended between two readings
are lived through too. A reading's randomness comes from one generator seeded once, so
the same seed, customers and timestamps give the same readings.

Readings are made a round at a time (every customer at one instant, in one loop), and
``payload_rounds`` gives a round as the Kafka keys and JSON values the producer sends,
without an object per reading. What a reading costs is mostly that loop's: the normal draws
come from a table (two per 24 random bits), a customer's constants are worked out once, the
wandering offset's decay once per interval, and an episode's end or a rest's end is one
comparison with a time drawn beforehand.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from statistics import NormalDist, pstdev
from typing import NamedTuple

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

# Standard normal draws: the quantiles of 4,096 equal steps of probability (their
# midpoints), scaled to a variance of exactly 1, picked by 12 random bits. They reach
# +-3.6 sigma; after rounding to whole bpm nothing tells them from random.gauss, at a tenth
# of its cost.
_NORMAL_BITS = 12
_NORMAL_MASK = (1 << _NORMAL_BITS) - 1


def _normal_table() -> tuple[float, ...]:
    steps = 1 << _NORMAL_BITS
    quantiles = [NormalDist().inv_cdf((i + 0.5) / steps) for i in range(steps)]
    scale = pstdev(quantiles)
    return tuple(q / scale for q in quantiles)


_NORMAL = _normal_table()
_THREE_WORDS = struct.Struct(">3Q")


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

# A customer's state holds its episode as an index of this tuple (0 is resting).
_KINDS = (REST, ACTIVITY, HIGH, LOW)
_CODES = {episode: code for code, episode in enumerate(_KINDS)}
_FIRST = -1  # not read yet


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


class _Profile(NamedTuple):  # a tuple: a tenth of a frozen dataclass's cost to make
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
    rest = 1.0
    for _, share in shares:
        rest -= share
    rest = max(rest, 1e-9)
    rates = []  # a loop, not a comprehension: this runs once per customer at the start
    for episode, share in shares:
        rates.append((episode, share / (episode.mean_seconds * rest)))
    return tuple(rates)


def _choose(options: tuple[tuple[Episode, float], ...], pick: float, other: Episode) -> Episode:
    """The option whose span of the weights, laid end to end, holds ``pick``; else ``other``."""
    for option, weight in options:
        if pick < weight:
            return option
        pick -= weight
    return other


class _State:
    """A customer: its constants, its episode, the wandering offset, the last reading's time."""

    __slots__ = (
        "baseline",
        "change",
        "cos_weight",
        "ends",
        "kind",
        "level",
        "noise",
        "profile",
        "seen",
        "sin_weight",
        "starts",
    )

    def __init__(self, profile: _Profile) -> None:
        self.profile = profile
        self.baseline = profile.baseline
        # The daily sine, sin(day + phase), as sin(day) cos(phase) + cos(day) sin(phase):
        # the round works out sin(day) and cos(day) once for every customer.
        self.sin_weight = DAILY_AMPLITUDE * math.cos(profile.phase)
        self.cos_weight = DAILY_AMPLITUDE * math.sin(profile.phase)
        self.kind = _FIRST
        self.change = -math.inf  # when the episode or the rest ends: the first reading
        self.starts = self.ends = self.level = self.noise = 0.0
        self.seen = -math.inf  # an offset that long forgotten is drawn afresh


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
        self._everyone: list[_State] | None = None

    @property
    def customer_ids(self) -> range:
        return range(self.first_customer, self.first_customer + self.customers)

    def profile(self, customer_id: int) -> _Profile:
        profile = self._profiles.get(customer_id)
        if profile is None:
            # Drawn from a hash of (seed, customer) so a customer's baseline and anomaly
            # rate do not depend on which replica or in which order it is simulated; a
            # hash costs a tenth of a random.Random seeded for each customer.
            drawn = hashlib.blake2b(b"%d:%d" % (self._seed, customer_id), digest_size=24)
            # Three numbers within [0, 1), from the 53 high bits of each 8 bytes.
            first, second, third = _THREE_WORDS.unpack(drawn.digest())
            low, high = BASELINE_RANGE
            baseline = low + (high - low) * (first >> 11) * 2.0**-53
            phase = 2 * math.pi * (second >> 11) * 2.0**-53
            spread = min(self.anomaly_rate, 1.0 - self.anomaly_rate)
            rate = self.anomaly_rate - spread + 2 * spread * (third >> 11) * 2.0**-53
            shares = episode_shares(rate)
            starts = start_rates(shares)
            total = starts[0][1] + starts[1][1] + starts[2][1]  # activity, high, low
            profile = _Profile(baseline, phase, rate, shares, starts, total)
            self._profiles[customer_id] = profile
        return profile

    def _state(self, customer_id: int) -> _State:
        state = self._states.get(customer_id)
        if state is None:
            state = self._states[customer_id] = _State(self.profile(customer_id))
        return state

    def _all(self) -> list[_State]:
        if self._everyone is None:
            self._everyone = [self._state(c) for c in self.customer_ids]
        return self._everyone

    def heart_rate(self, customer_id: int, at: datetime) -> int:
        return self._rates([self._state(customer_id)], at.timestamp())[0]

    def round_rates(self, at: datetime) -> list[int]:
        """Every customer's heart rate at ``at``, in customer order: one round."""
        return self._rates(self._all(), at.timestamp())

    def _rates(self, states: Sequence[_State], now: float) -> list[int]:
        """The heart rates of ``states`` at ``now``, moving each on to it.

        The model's hot loop: everything a reading needs that does not depend on the
        customer is worked out before it, and what is rare (an episode beginning or
        ending) is left to ``_move``.
        """
        rng = self._rng
        bits, chance = rng.getrandbits, rng.random
        normal, mask, shift = _NORMAL, _NORMAL_MASK, _NORMAL_BITS
        invalid_rate, spike_probability = self.invalid_rate, self.spike_probability
        fault_low = (CLAMP_RANGE[0], VALID_MIN_BPM - 0.51)
        fault_high = (VALID_MAX_BPM + 0.51, CLAMP_RANGE[1])
        normal_low, normal_high = NORMAL_BAND
        high_low, high_high = HIGH_BAND
        low_low, low_high = LOW_BAND
        high_code, low_code = _CODES[HIGH], _CODES[LOW]
        day = 2 * math.pi * (now % SECONDS_PER_DAY) / SECONDS_PER_DAY
        day_sin, day_cos = math.sin(day), math.cos(day)
        last = math.nan
        keep = kick = 0.0
        rates: list[int] = []
        append = rates.append
        for state in states:
            elapsed = now - state.seen
            if elapsed != last:  # a round's customers share it: the decay is worked out once
                last = elapsed
                keep = math.exp(-elapsed / BEAT_MEMORY_SECONDS) if elapsed > 0 else 1.0
                kick = BEAT_SIGMA_BPM * math.sqrt(1.0 - keep * keep)
            state.seen = now
            drawn = bits(2 * shift)
            noise = state.noise = keep * state.noise + kick * normal[drawn >> shift]
            wander = noise + NOISE_SIGMA_BPM * normal[drawn & mask]
            if now >= state.change:
                self._move(state, now)
            kind = state.kind
            if kind == high_code:
                bpm = state.level + wander
                floor, ceiling = high_low, high_high
            elif kind == low_code:
                bpm = state.level + wander / 2
                floor, ceiling = low_low, low_high
            else:
                bpm = state.baseline + wander + state.sin_weight * day_sin
                bpm += state.cos_weight * day_cos
                if kind:  # activity, ramping in and out
                    ramp = min(1.0, (now - state.starts) / RAMP_SECONDS)
                    ramp = min(ramp, (state.ends - now) / RAMP_SECONDS)
                    if ramp > 0:
                        bpm += state.level * ramp
                if chance() < spike_probability:
                    bpm += SPIKE_BPM if chance() < 0.5 else -SPIKE_BPM
                floor, ceiling = normal_low, normal_high
            if chance() < invalid_rate:
                # A sensor fault: a value just outside the valid band, on either side.
                bpm = rng.uniform(*(fault_low if chance() < 0.5 else fault_high))
            elif bpm < floor:
                bpm = floor
            elif bpm > ceiling:
                bpm = ceiling
            append(round(bpm))
        return rates

    def _move(self, state: _State, now: float) -> None:
        """The customer's episodes and rests up to ``now``, which has reached ``state.change``."""
        rng = self._rng
        profile = state.profile
        if state.kind == _FIRST:  # the first reading: somewhere in the customer's long run
            episode = _choose(profile.shares, rng.random(), REST)
            if episode is REST:
                state.kind = 0
                state.change = now + self._rest(profile)
            else:
                self._start(state, episode, now, rng.expovariate(1.0 / episode.mean_seconds))
            return
        while now >= state.change:
            at = state.change
            if state.kind:  # the episode ended then: a rest begins
                state.kind = 0
                state.change = at + self._rest(profile)
                continue
            total = profile.start_rate
            episode = _choose(profile.starts, rng.random() * total, profile.starts[-1][0])
            extra = episode.mean_seconds - episode.min_seconds
            self._start(state, episode, at, episode.min_seconds + rng.expovariate(1.0 / extra))

    def _rest(self, profile: _Profile) -> float:
        """How long a rest lasts: until the next episode of any kind starts."""
        total = profile.start_rate
        return self._rng.expovariate(total) if total > 0 else math.inf

    def _start(self, state: _State, episode: Episode, began: float, duration: float) -> None:
        state.kind = _CODES[episode]
        state.starts, state.ends = began, began + duration
        state.change = state.ends
        state.level = self._rng.uniform(*episode.level)

    def reading(self, customer_id: int, at: datetime) -> GeneratedReading:
        return GeneratedReading(customer_id, at, self.heart_rate(customer_id, at))

    def _instants(self, start: datetime | None, step: timedelta | None) -> Iterator[datetime]:
        """Each round's timestamp: see ``rounds``."""
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
            yield at

    def rounds(
        self, start: datetime | None = None, step: timedelta | None = None
    ) -> Iterator[GeneratedReading]:
        """Endless readings, one per customer per round.

        Without ``step`` each round is stamped with the wall clock, kept strictly
        increasing so no two readings of a customer share a timestamp; with
        ``step`` round *n* is stamped ``start + n * step`` (reproducible data).
        """
        for at in self._instants(start, step):
            for customer_id, rate in zip(self.customer_ids, self.round_rates(at), strict=True):
                yield GeneratedReading(customer_id, at, rate)

    def payload_rounds(
        self, start: datetime | None = None, step: timedelta | None = None, most: int = 4096
    ) -> Iterator[tuple[list[bytes], list[bytes]]]:
        """The readings of ``rounds`` as Kafka keys and JSON values, ``most`` at a time.

        A round comes in parts of at most ``most`` customers (all stamped at the round's
        instant, each part made when it is asked for), so that a large round is never
        held in memory whole. Byte for byte what ``GeneratedReading.key`` and ``to_json``
        make, with no object per reading: the keys and the start of each value are made
        once per customer, the rest of a value once per round and heart rate.
        """
        if most < 1:
            raise ValueError("most must be at least 1")
        states = self._all()
        ids = self.customer_ids
        keys = [b"%d" % c for c in ids]
        heads = [b'{"customer_id":%d,"timestamp":"' % c for c in ids]
        # A table of every rate's end of a value pays for itself from some 400 customers.
        table = len(states) >= 2 * (CLAMP_RANGE[1] - CLAMP_RANGE[0])
        for at in self._instants(start, step):
            now = at.timestamp()
            stamp = at.isoformat(timespec="microseconds").encode()
            pattern = b"%s" + stamp + b'","heart_rate":%d}'
            tails = [pattern[2:] % r for r in range(CLAMP_RANGE[1] + 1)] if table else []
            for first in range(0, len(states), most):
                last = first + most
                whole = first == 0 and last >= len(states)
                rates = self._rates(states if whole else states[first:last], now)
                part = heads if whole else heads[first:last]
                if table:
                    values = [head + tails[r] for head, r in zip(part, rates, strict=True)]
                else:
                    values = [pattern % pair for pair in zip(part, rates, strict=True)]
                yield (keys if whole else keys[first:last]), values
