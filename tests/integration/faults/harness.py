"""What every fault test shares: a workload whose answer is known, a producer that keeps
writing through outages, consumer processes to kill, the lag as PostgreSQL sees it, the
final accounting, and the one report line per fault.

The accounting a fault test ends with (`account`):

* PostgreSQL holds exactly the valid readings: the set of stored (customer_id, ts) is the
  expected set and the row count equals it (nothing lost, nothing twice);
* the stored offsets add up to the messages produced, which is what the topic holds;
* every invalid message is on the dead-letter topic at least once, found by its source
  partition and offset; where the ``dead_letters`` table exists, it holds exactly those
  (its primary key makes each one row).

The report line, printed, collected for the end of the run and appended to the file that
HEARTBEAT_FAULT_REPORT names (if set)::

    FAULT <name>: recovered in <seconds> s, <n> readings (<extra>)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from confluent_kafka import IsolationLevel, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from heartbeat.kafka import DeliveryReport, KafkaProducer, ensure_topics, read_topic
from heartbeat.settings import Settings
from heartbeat.validation import VALID_MAX_BPM, VALID_MIN_BPM
from heartbeat_localstack.process import tail
from tests.integration.pipeline import Pipeline, fixed_readings, http_get, scrape, unique

REPORT_VARIABLE = "HEARTBEAT_FAULT_REPORT"
REPORTED: list[str] = []  # every report line of this run, for the terminal summary
# Log lines worth showing when a fault test fails: ownership changes, retries, stalls, exits.
EVIDENCE = (
    "assigned",
    "revoked",
    "lost",
    "unavailable",
    "stall",
    "not ready",
    "is ready",
    "stop",
    "leaving",
    "abandon",
    "ERROR",
    "Traceback",
)


# --- the workload ------------------------------------------------------------------------

Message = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


@dataclass(frozen=True)
class Workload:
    """Messages in production order, and what the pipeline must make of them."""

    messages: list[Message]
    expected: frozenset[tuple[int, datetime]]  # (customer_id, ts) of every valid reading
    invalid: frozenset[int]  # indexes of the messages that must be dead-lettered

    @property
    def readings(self) -> int:
        return len(self.expected)


def invalid_variant(index: int, customer_id: int, ts: datetime) -> bytes:
    """A message the consumer must refuse: out-of-range heart rates and malformed JSON."""
    stamp = ts.isoformat()
    variants = (
        json.dumps({"customer_id": customer_id, "timestamp": stamp, "heart_rate": 250}),
        json.dumps({"customer_id": customer_id, "timestamp": stamp, "heart_rate": 12}),
        f'{{"customer_id": {customer_id}, "timestamp": "{stamp}", "heart_',
        "not json at all",
    )
    return variants[index % len(variants)].encode()


def make_workload(customers: int, rounds: int, seed: int, invalid_every: int = 40) -> Workload:
    """customers x rounds readings; every `invalid_every`-th one replaced by an invalid
    message of the same key (the generator's own out-of-range readings count as invalid)."""
    messages: list[Message] = []
    expected: set[tuple[int, datetime]] = set()
    invalid: set[int] = set()
    for index, reading in enumerate(fixed_readings(customers, rounds, seed)):
        if index % invalid_every == invalid_every - 1:
            value = invalid_variant(index // invalid_every, reading.customer_id, reading.timestamp)
            invalid.add(index)
        else:
            value = reading.to_json()
            if VALID_MIN_BPM <= reading.heart_rate <= VALID_MAX_BPM:
                expected.add((reading.customer_id, reading.timestamp))
            else:
                invalid.add(index)
        messages.append((reading.key(), value, []))
    return Workload(messages, frozenset(expected), frozenset(invalid))


def insert_invalid(workload: Workload, index: int, message: Message) -> Workload:
    """`workload` with the invalid `message` produced at `index`."""
    shifted = {i + 1 if i >= index else i for i in workload.invalid}
    messages = [*workload.messages[:index], message, *workload.messages[index:]]
    return Workload(messages, workload.expected, frozenset(shifted | {index}))


def retopic(pipeline: Pipeline, *, replication: int) -> None:
    """Give `pipeline` new topics with `replication` replicas (its fixture made them with 1)."""
    topic = unique("heartbeats")
    pipeline.settings = pipeline.with_settings(
        kafka_topic=topic, kafka_dlq_topic=f"{topic}.dlq", kafka_replication_factor=replication
    )
    pipeline.env |= {
        "KAFKA_TOPIC": topic,
        "KAFKA_DLQ_TOPIC": f"{topic}.dlq",
        "KAFKA_REPLICATION_FACTOR": str(replication),
    }
    ensure_topics(pipeline.settings, [topic, f"{topic}.dlq"])


# --- producing through faults ------------------------------------------------------------


# Feeders of the running test, stopped at its end whether it passed or not (conftest).
RUNNING_FEEDERS: list[Feeder] = []


class Feeder:
    """Produces a workload from a thread at `rate` messages/s, idempotent with acks=all.

    Messages wait in the client through an outage (no delivery timeout) and are delivered
    once a broker answers again; each delivery report's partition and offset is kept, so
    an invalid message can be found on the dead-letter topic by its source offset.
    """

    def __init__(self, settings: Settings, workload: Workload, rate: float) -> None:
        self.settings = settings
        self.workload = workload
        self.rate = rate
        self.coordinates: dict[int, tuple[int, int]] = {}
        self.failures: list[str] = []
        self.queued = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)
        RUNNING_FEEDERS.append(self)
        self._producer = KafkaProducer(
            settings,
            on_delivery=lambda _: None,
            extra={"message.timeout.ms": 0, "queue.buffering.max.messages": 1_000_000},
        )

    @property
    def delivered(self) -> int:
        with self._lock:
            return len(self.coordinates)

    def start(self) -> Feeder:
        self._thread.start()
        return self

    def produce_now(self, count: int) -> None:
        """Send the next `count` messages at once (a backlog), before or instead of pacing."""
        end = min(len(self.workload.messages), self.queued + count)
        while self.queued < end:
            self._send(self.queued)
        self._producer.flush(120)

    def _run(self) -> None:
        started = time.monotonic()
        first = self.queued
        total = len(self.workload.messages)
        while self.queued < total and not self._stop.is_set():
            due = first + int((time.monotonic() - started) * self.rate) + 1
            while self.queued < min(due, total):
                self._send(self.queued)
            self._producer.poll(0.02)
        while len(self._producer) and not self.failures and not self._stop.is_set():
            self._producer.poll(0.2)

    def stop(self) -> None:
        """End the thread (a test that failed midway): what is still queued is abandoned."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _send(self, index: int) -> None:
        key, value, headers = self.workload.messages[index]

        def delivered(report: DeliveryReport) -> None:
            if report.error is not None:
                self.failures.append(f"message {index}: {report.error}")
                return
            with self._lock:
                self.coordinates[index] = (report.partition, report.offset)

        self._producer.produce(self.settings.kafka_topic, key, value, headers, delivered)
        self.queued += 1

    def is_done(self) -> bool:
        return self.delivered == len(self.workload.messages)

    def wait(self, timeout: float) -> None:
        """Return once every message is delivered; fail on an error or after `timeout`."""
        deadline = time.monotonic() + timeout
        while not self.is_done():
            assert not self.failures, f"{len(self.failures)} deliveries failed: {self.failures[:3]}"
            assert time.monotonic() < deadline, (
                f"{self.delivered} of {len(self.workload.messages)} delivered after {timeout} s"
            )
            time.sleep(0.2)
        self._thread.join(10)


# --- consumer processes ------------------------------------------------------------------


@dataclass
class Member:
    """One `heartbeat consume` process."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def ready(self) -> bool:
        return http_get(self.port, "/readyz") == 200

    def metrics(self) -> str:
        return scrape(self.port)

    def owned(self) -> set[int]:
        """The partitions it exports a lag series for: those it owns."""
        found = set()
        for line in self.metrics().splitlines():
            if line.startswith("heartbeat_consumer_lag{"):
                labels = line[line.index("{") + 1 : line.index("}")]
                for pair in labels.split(","):
                    name, _, value = pair.partition("=")
                    if name == "partition":
                        found.add(int(value.strip('"')))
        return found


@dataclass
class Fleet:
    """Consumer processes of one group, each with its own metrics port and log file."""

    pipeline: Pipeline
    logs: Path
    env: dict[str, str] = field(default_factory=dict)
    members: list[Member] = field(default_factory=list)
    gone: list[Member] = field(default_factory=list)
    exits: list[tuple[str, int | None, float]] = field(default_factory=list)
    _leaving: list[threading.Thread] = field(default_factory=list)
    _count: int = 0

    def spawn(self, env: dict[str, str] | None = None) -> Member:
        self._count += 1
        port = self.pipeline.free_port()
        name = f"consumer-{self._count}"
        log = self.logs / f"{name}.log"
        process = self.pipeline.spawn(
            "consume", env=self.env | {"METRICS_PORT": str(port)} | (env or {}), log=log
        )
        member = Member(name, process, port, log)
        self.members.append(member)
        return member

    def kill(self, member: Member) -> None:
        member.process.send_signal(signal.SIGKILL)
        member.process.wait(10)
        self._retire(member)

    def terminate(self, member: Member, timeout: float = 60.0) -> tuple[int | None, float]:
        """SIGTERM, then wait; (exit code or None if still running, seconds it took)."""
        started = time.monotonic()
        member.process.send_signal(signal.SIGTERM)
        try:
            code: int | None = member.process.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - started
        self.exits.append((member.name, code, took))
        self._retire(member)
        return code, took

    def leave(self, member: Member) -> None:
        """SIGTERM without waiting: the member leaves while the others carry on.

        A thread notes when it exits; `wait_left` collects exit code and time taken."""
        since = time.monotonic()

        def watch() -> None:
            try:
                code: int | None = member.process.wait(120)
            except subprocess.TimeoutExpired:
                code = None
            self.exits.append((member.name, code, time.monotonic() - since))

        watcher = threading.Thread(target=watch, name=f"{member.name}-exit", daemon=True)
        member.process.send_signal(signal.SIGTERM)
        watcher.start()
        self._leaving.append(watcher)
        self._retire(member)

    def wait_left(self, timeout: float = 60.0) -> None:
        """Wait until every member sent away by `leave` has exited (or `timeout` passed)."""
        deadline = time.monotonic() + timeout
        for watcher in self._leaving:
            watcher.join(max(0.1, deadline - time.monotonic()))
        self._leaving.clear()

    def terminate_all(self, timeout: float = 60.0) -> None:
        """SIGTERM to every member at once, then wait for each (SIGKILL past `timeout`)."""
        started = time.monotonic()
        members = list(self.members)
        for member in members:
            member.process.send_signal(signal.SIGTERM)
        for member in members:
            left = max(0.1, started + timeout - time.monotonic())
            try:
                code: int | None = member.process.wait(left)
            except subprocess.TimeoutExpired:
                code = None
                member.process.kill()
                member.process.wait(10)
            self.exits.append((member.name, code, time.monotonic() - started))
            self._retire(member)

    def _retire(self, member: Member) -> None:
        if member in self.members:
            self.members.remove(member)
            self.gone.append(member)

    def replace_exited(self) -> list[str]:
        """Start a new member for each that exited by itself, as a Deployment would; says who."""
        exited = [m for m in self.members if not m.alive()]
        for member in exited:
            self._retire(member)
            self.spawn()
        return [f"{m.name} exited {m.process.returncode}" for m in exited]

    def crashed(self) -> list[str]:
        """Members that exited by themselves (not through kill or terminate)."""
        return [f"{m.name} exited {m.process.returncode}" for m in self.members if not m.alive()]

    def tails(self, lines: int = 40) -> str:
        parts = []
        for member in [*self.gone, *self.members]:
            state = "running" if member.alive() else f"exit {member.process.returncode}"
            parts.append(f"--- {member.name} ({state}), {member.log}:\n{tail(member.log, lines)}")
        return "\n".join(parts)

    def evidence(self) -> str:
        """What the members said and say: key log lines, /readyz and lag gauges, log tails."""
        parts = ["consumer evidence:"]
        for name, lines in self.grep(*EVIDENCE).items():
            parts.append(f"--- {name}: {len(lines)} key lines (last 25)")
            parts.extend(line[:400] for line in lines[-25:])
        for member in self.members:
            if member.alive():
                gauges = [
                    line
                    for line in member.metrics().splitlines()
                    if line.startswith(("heartbeat_consumer_lag", "heartbeat_assigned"))
                ]
                status = http_get(member.port, "/readyz")
                parts.append(f"--- {member.name} now: /readyz {status}; " + "; ".join(gauges))
        parts.append(self.tails(20))
        return "\n".join(parts)

    def grep(self, *needles: str) -> dict[str, list[str]]:
        """Per member, its log lines that contain any of `needles` (evidence for a report)."""
        found = {}
        for member in [*self.gone, *self.members]:
            try:
                text = member.log.read_text(errors="replace")
            except OSError:
                continue
            found[member.name] = [
                line for line in text.splitlines() if any(n in line for n in needles)
            ]
        return found

    def kill_leftovers(self) -> None:
        """SIGKILL whatever still runs (after a failure): no process is left behind."""
        for member in [*self.members, *self.gone]:
            if member.alive():
                member.process.kill()
                member.process.wait(10)
        for member in list(self.members):
            self._retire(member)


@contextmanager
def fleet(pipeline: Pipeline, logs: Path, env: dict[str, str] | None = None) -> Iterator[Fleet]:
    """A `Fleet` whose processes are stopped afterwards; on a failure it prints their logs."""
    consumers = Fleet(pipeline, logs, dict(env or {}))
    try:
        yield consumers
    except BaseException:
        print(consumers.evidence())
        raise
    finally:
        consumers.kill_leftovers()


def assert_exited_promptly(consumers: Fleet, limit: float = 20.0) -> None:
    """Every member stopped by SIGTERM exited 0 within `limit` seconds."""
    late = [(name, code, round(took, 1)) for name, code, took in consumers.exits]
    late = [(name, code, took) for name, code, took in late if code != 0 or took > limit]
    if late:
        print(consumers.evidence())
    assert not late, f"(member, exit code, seconds) not 0 within {limit:.0f} s: {late}"


# --- lag, as PostgreSQL sees it ----------------------------------------------------------


class Lag:
    """Per partition: the topic's end offset minus the next offset stored in PostgreSQL.

    Also remembers when each partition's stored offset last moved, so a wait can say which
    partitions stood still and for how long.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._admin = AdminClient({"bootstrap.servers": pipeline.settings.kafka_bootstrap_servers})
        self.partitions = pipeline.settings.kafka_topic_partitions
        self.last_ends: dict[int, int] = {}
        self.stored: dict[int, int] = {}
        self.moved_at: dict[int, float] = {}

    def ends(self, timeout: float = 5.0) -> dict[int, int] | None:
        """End offsets of the readings topic; None while no broker answers."""
        topic = self.pipeline.settings.kafka_topic
        wanted = {TopicPartition(topic, p): OffsetSpec.latest() for p in range(self.partitions)}
        try:
            futures = self._admin.list_offsets(
                wanted, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=timeout
            )
            ends = {tp.partition: f.result().offset for tp, f in futures.items()}
        except KafkaException:
            return None
        self.last_ends = ends
        return ends

    def read(self) -> dict[int, int] | None:
        """Lag per partition now; None while the brokers do not answer."""
        ends = self.ends()
        stored = self.pipeline.stored_offsets()
        now = time.monotonic()
        for partition in range(self.partitions):
            offset = stored.get(partition, 0)
            if offset != self.stored.get(partition):
                self.stored[partition] = offset
                self.moved_at[partition] = now
        if ends is None:
            return None
        return {p: ends[p] - stored.get(p, 0) for p in range(self.partitions)}

    def still(self, lag: dict[int, int]) -> dict[int, tuple[int, float]]:
        """Partitions with lag: (lag, seconds since their stored offset last moved)."""
        now = time.monotonic()
        return {p: (n, now - self.moved_at.get(p, now)) for p, n in lag.items() if n > 0}

    def wait_drained(
        self,
        feeder: Feeder | None,
        timeout: float,
        *,
        watch: Callable[[dict[int, int]], None] | None = None,
    ) -> float:
        """Wait until the producer is done and every partition has lag 0; the time it was.

        `watch`, if given, sees each lag reading (to check readiness while waiting). On a
        timeout the error names each partition with lag and how long it stood still.
        """
        deadline = time.monotonic() + timeout
        lag: dict[int, int] | None = None
        while time.monotonic() < deadline:
            lag = self.read()
            if lag is not None:
                if watch is not None:
                    watch(lag)
                if (feeder is None or feeder.is_done()) and not any(lag.values()):
                    return time.monotonic()
            time.sleep(0.5)
        detail = (
            "no broker answered"
            if lag is None
            else ", ".join(
                f"[{p}] lag {n}, still for {s:.0f} s" for p, (n, s) in self.still(lag).items()
            )
        )
        produced = "" if feeder is None else f"; {feeder.delivered} messages delivered"
        raise AssertionError(f"not drained within {timeout:.0f} s: {detail}{produced}")


def group_coordinator(settings: Settings) -> int:
    """The broker id of the consumer group's coordinator."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    futures = admin.describe_consumer_groups([settings.kafka_consumer_group], request_timeout=10)
    return int(futures[settings.kafka_consumer_group].result().coordinator.id)


# --- the accounting ----------------------------------------------------------------------


def dead_letter_sources(pipeline: Pipeline, wanted: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """(source partition, source offset) of dead letters for the readings topic, read from
    the beginning until every `wanted` one has been seen or the topic stays idle."""
    topic = pipeline.settings.kafka_topic
    seen: set[tuple[int, int]] = set()
    for record in read_topic(
        pipeline.settings,
        pipeline.settings.kafka_dlq_topic,
        from_beginning=True,
        max_messages=None,
        idle_timeout=10,
    ):
        headers = dict(record.headers)
        if headers.get("source_topic", b"").decode() != topic:
            continue
        seen.add((int(headers["source_partition"]), int(headers["source_offset"])))
        if wanted <= seen:
            break
    return seen


def dead_letter_rows(pipeline: Pipeline) -> set[tuple[int, int]] | None:
    """(partition, offset) of each message in the ``dead_letters`` table for this pipeline's
    topic and group (one row per message: its primary key); None where the table is missing."""
    if pipeline.sql("SELECT to_regclass('dead_letters')")[0][0] is None:
        return None
    rows = pipeline.sql(
        'SELECT partition, "offset" FROM dead_letters WHERE topic = %s AND consumer_group = %s',
        (pipeline.settings.kafka_topic, pipeline.settings.kafka_consumer_group),
    )
    return {(int(p), int(o)) for p, o in rows}


def account(pipeline: Pipeline, workload: Workload, feeder: Feeder) -> None:
    """Every valid reading stored exactly once, every invalid one dead-lettered (see above)."""
    assert feeder.is_done(), f"only {feeder.delivered} of {len(workload.messages)} delivered"
    stored = pipeline.stored_keys()
    missing = workload.expected - stored
    extra = stored - workload.expected
    assert not missing, f"{len(missing)} valid readings never stored, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} rows that are no valid reading, e.g. {sorted(extra)[:3]}"
    assert pipeline.row_count() == len(workload.expected)
    produced = len(workload.messages)
    offsets = pipeline.stored_offsets()
    assert sum(offsets.values()) == produced, f"stored offsets {offsets}, {produced} produced"
    ends = Lag(pipeline).ends()
    assert ends is not None
    assert sum(ends.values()) == produced, f"the topic holds {ends}, {produced} produced"
    wanted = {feeder.coordinates[i] for i in workload.invalid}
    seen = dead_letter_sources(pipeline, wanted)
    lost = wanted - seen
    assert not lost, f"{len(lost)} invalid messages not dead-lettered, e.g. {sorted(lost)[:3]}"
    table = dead_letter_rows(pipeline)
    if table is not None:
        assert table == wanted, (
            f"dead_letters: {len(wanted - table)} missing, {len(table - wanted)} unexpected"
        )


# --- the report --------------------------------------------------------------------------


def report(name: str, seconds: float, readings: int, extra: str = "") -> str:
    """Print the fault's line and keep it for the run's summary and the report file."""
    line = f"FAULT {name}: recovered in {seconds:.1f} s, {readings} readings"
    if extra:
        line += f" ({extra})"
    print(line)
    REPORTED.append(line)
    path = os.environ.get(REPORT_VARIABLE)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")
    return line
