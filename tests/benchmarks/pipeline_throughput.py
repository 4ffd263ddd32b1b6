"""The consumer beside the ceiling PostgreSQL sets, and the producer beside a bare loop, in one run.

    python -m tests.benchmarks.pipeline_throughput [--readings 1000000] [--customers 10000]
        [--naive-seconds 15] [--latency-seconds 20] [--scale]

Starts its own Kafka and PostgreSQL (local processes, in a temporary folder), then:

* producer: a bare confluent-kafka loop (``produce`` and ``poll(0)``, idempotent,
  ``acks=all``, as ``heartbeat produce`` sets them) loads the backlog of generated
  payloads, made beforehand; ``heartbeat produce``'s own path (``ProducerApp``, unpaced,
  generating its readings as it goes) sends ``--producer-readings`` to a topic of its own.
* ceiling: PostgreSQL alone, no Kafka: the readings decoded and packed beforehand, then
  binary COPY -> staging -> ``INSERT ... ON CONFLICT`` with the offsets, 20,000 readings
  per transaction (the consumer's own statements, through ``Store.write_rows``);
  measured before the drains and again after the rest, and every ratio is to the
  higher of the two.
* consumer, defaults (and with batches of 5,000, to show what a smaller batch costs):
  ``heartbeat consume``, a process of its
  own, drains the backlog into an empty database; readings/s from its first stored
  offset to its last, its CPU (user + system, every thread) over the same span per
  reading, and its peak RSS (``VmHWM``).
* naive: consume, validate, then INSERT and COMMIT one row per message, for
  ``--naive-seconds``.
* latency: readings stamped with the wall clock as they are sent, paced at 10,000 a
  second for ``--latency-seconds`` (a bare loop: the generator's rounds share one stamp,
  which would count the time to generate a round as latency), and a consumer with
  defaults; the p99 of the consumer's own event-to-stored histogram.
* ``--scale``: two and three consumer processes in one group draining the backlog.

For each drain it prints where the CPU went over the same span, in cores (CPU seconds per
second of the drain, from ``/proc/PID/stat``, children included): each consumer process,
PostgreSQL (the postmaster and every backend) and the broker, beside the machine's cores
and its load average at the end of the drain; a total near the cores is a saturated
machine. It prints the machine's load average at the start and the end. The machine is shared:
read the ratios, measured in the same run, rather than the absolute figures. Nothing
here asserts a threshold.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from confluent_kafka import Producer

from heartbeat.batch import Batch
from heartbeat.generator import ReadingGenerator
from heartbeat.kafka import KafkaConsumer, ensure_topics
from heartbeat.maintain import Maintainer
from heartbeat.settings import Settings
from heartbeat.store import Store
from heartbeat.types import Partition
from heartbeat.validation import Reading, validate
from heartbeat.writer import Packed
from heartbeat_localstack.kafka import KafkaBroker
from heartbeat_localstack.postgres import PostgresServer
from tests.integration.pipeline import create_database, drop_database, scrape

logger = logging.getLogger("benchmark")

ROOT = Path(__file__).resolve().parents[2]
CEILING_BATCH = 20_000
CEILING_PARTITION = Partition("ceiling", 0)
LIVE_RATE = 10_000
TICKS = os.sysconf("SC_CLK_TCK")


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


@contextmanager
def partitioned_database(admin: str, name: str, settings: Settings) -> Iterator[str]:
    """A migrated database whose daily partitions ``heartbeat maintain`` made, as shipped,
    for one measurement, then dropped.

    Each measurement starts from a checkpoint and ends with its database gone, so the
    next one neither writes out this one's dirty buffers nor shares the machine with
    autovacuum of its million rows: without that, later drains of a run were slower than
    the same drain earlier in it.
    """
    conninfo = create_database(admin, name)
    with Store(conninfo, max_size=2) as store:
        Maintainer(store, settings).run()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    try:
        yield conninfo
    finally:
        drop_database(admin, name)


def stored_total(conn: psycopg.Connection[tuple[int]], group: str) -> int:
    """Messages the group has committed, through ``conn`` (autocommit): a drain polls
    this every 20 ms, and a new connection each time would fork a PostgreSQL backend
    50 times a second beside the writer being measured."""
    row = conn.execute(
        "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE consumer_group = %s",
        (group,),
    ).fetchone()
    return int(row[0]) if row else 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- processes -----------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def tree_cpu_seconds(root: int) -> float:
    """CPU of ``root`` and its descendants: live ones, and those it waited for (cutime)."""
    parents: dict[int, int] = {}
    own: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        # utime, stime, cutime, cstime: an exited child's time moves to its parent's c*time.
        own[pid] = sum(int(f) for f in fields[11:15]) / TICKS
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in own and pid not in tree:
            tree.add(pid)
            todo += [child for child, parent in parents.items() if parent == pid]
    return sum(own[pid] for pid in tree)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def spawn(
    command: str,
    settings: Settings,
    conninfo: str,
    stderr: int | None = None,
    **env: str,
) -> subprocess.Popen[bytes]:
    """``heartbeat COMMAND`` as a process of its own, from ``--consumer-code`` if given."""
    variables = os.environ | {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_TOPIC": settings.kafka_topic,
        "KAFKA_DLQ_TOPIC": settings.kafka_dlq_topic,
        "KAFKA_CONSUMER_GROUP": settings.kafka_consumer_group,
        "KAFKA_AUTO_OFFSET_RESET": "earliest",
        "DATABASE_URL": conninfo,
        "METRICS_PORT": "0",
        "LOG_LEVEL": "WARNING",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "heartbeat", command], env=variables, cwd=ROOT, stderr=stderr
    )


@dataclass
class Drain:
    rate: float  # readings/s
    cpu_us: float  # per reading, every process
    rss_mb: float  # the largest peak RSS of the processes
    consumers: list[float]  # each consumer process's CPU over the drain, in cores
    services: dict[str, float]  # the same for PostgreSQL and the broker
    load: str  # the load average at the end of the drain


def drain(
    settings: Settings,
    conninfo: str,
    expected: int,
    processes: int = 1,
    services: dict[str, int] | None = None,
    **env: str,
) -> Drain:
    """Consumer processes drain the backlog; measured from their first stored offset.

    ``services`` names the root process of each other party (PostgreSQL's postmaster, the
    broker), whose CPU, their descendants' included, is taken over the same span.
    """
    group = settings.kafka_consumer_group
    roots = dict(services or {})
    poll = psycopg.connect(conninfo, autocommit=True)
    children = [spawn("consume", settings, conninfo, **env) for _ in range(processes)]
    try:
        while (first := stored_total(poll, group)) == 0:
            if any(c.poll() is not None for c in children):
                raise SystemExit("a consumer exited before storing anything")
            time.sleep(0.01)
        started = time.perf_counter()
        cpu = [cpu_seconds(c.pid) for c in children]
        others = {name: tree_cpu_seconds(pid) for name, pid in roots.items()}
        while (done := stored_total(poll, group)) < expected:
            if any(c.poll() is not None for c in children):
                raise SystemExit("a consumer exited before the end of the backlog")
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        cpu = [cpu_seconds(c.pid) - before for c, before in zip(children, cpu, strict=True)]
        others = {name: tree_cpu_seconds(roots[name]) - t for name, t in others.items()}
        rss = max(peak_rss_mb(c.pid) for c in children)
        at_end = load()
    finally:
        poll.close()
        for child in children:
            child.terminate()
        for child in children:
            child.wait(60)
    readings = max(1, done - first)
    return Drain(
        readings / elapsed,
        sum(cpu) / readings * 1e6,
        rss,
        [c / elapsed for c in cpu],
        {name: t / elapsed for name, t in others.items()},
        at_end,
    )


# --- producing -----------------------------------------------------------------------


def payloads(customers: int, count: int) -> list[tuple[bytes, bytes]]:
    generator = ReadingGenerator(customers=customers, seed=2026)
    stream = generator.rounds()
    return [(r.key(), r.to_json()) for r in (next(stream) for _ in range(count))]


def bare_loop(settings: Settings, topic: str, messages: list[tuple[bytes, bytes]]) -> float:
    """Readings/s of a bare confluent-kafka loop over ready payloads, the same settings."""
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "compression.type": settings.kafka_compression,
        }
    )
    started = time.perf_counter()
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(120):
        raise SystemExit("the bare loop could not deliver everything")
    return len(messages) / (time.perf_counter() - started)


def produce_app(settings: Settings, count: int) -> float:
    """Readings/s of ``heartbeat produce`` (its own process, generating its readings, unpaced),
    from its own closing line: the time of its loop, not of its start."""
    child = spawn(
        "produce",
        settings,
        "",
        PRODUCER_COUNT=str(count),
        PRODUCER_RATE="0",
        PRODUCER_CUSTOMERS=str(settings.producer_customers),
        LOG_LEVEL="INFO",
        LOG_FORMAT="text",
        stderr=subprocess.PIPE,
    )
    _, err = child.communicate(timeout=1200)
    found = re.search(rb"sent (\d+) messages in ([\d.]+)s; delivered (\d+)", err)
    if child.returncode != 0 or found is None or int(found[3]) != count:
        raise SystemExit(f"heartbeat produce failed: {err.decode(errors='replace')[-2000:]}")
    return count / float(found[2])


# --- PostgreSQL alone ------------------------------------------------------------------


class _Ready:
    """A payload as the consumer's batch reads a message."""

    __slots__ = ("_offset", "_value")

    def __init__(self, offset: int, value: bytes) -> None:
        self._offset, self._value = offset, value

    def topic(self) -> str:
        return "ceiling"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value


def prepare(messages: list[tuple[bytes, bytes]]) -> list[Packed]:
    """The backlog decoded and packed for the ceiling, in its batches of 20,000, as the
    consumer's writer packs a batch (``Packed.of``)."""
    prepared = []
    for start in range(0, len(messages), CEILING_BATCH):
        batch = Batch(timedelta(minutes=5))
        chunk = messages[start : start + CEILING_BATCH]
        batch.add(
            [_Ready(start + i, v) for i, (_, v) in enumerate(chunk)],
            {CEILING_PARTITION},
            datetime.now(UTC),
        )
        prepared.append(Packed.of(batch))
    return prepared


def ceiling(conninfo: str, prepared: list[Packed]) -> float:
    """Readings/s PostgreSQL takes through the consumer's statements, decoded beforehand."""
    stored = 0
    with Store(conninfo, max_size=1) as store:
        started = time.perf_counter()
        for packed in prepared:
            stored += store.write_rows(
                "ceiling", packed.copy_data, packed.columns, packed.offsets
            ).stored
        elapsed = time.perf_counter() - started
    return stored / elapsed


def naive(settings: Settings, conninfo: str, seconds: float) -> float:
    """Readings/s of validate, then INSERT and COMMIT one row per message (no offsets)."""
    store = Store(conninfo, max_size=1)
    store.open()
    consumer = KafkaConsumer(
        settings,
        on_assign=lambda parts: consumer.resume(parts),
        on_revoke=lambda parts, lost: None,
    )
    consumer.subscribe([settings.kafka_topic])
    seen, started = 0, None
    while started is None or time.perf_counter() - started < seconds:
        for record in consumer.poll_batch(1, 1.0):
            started = started or time.perf_counter()
            verdict = validate(
                record.value, now=datetime.now(UTC), max_future_skew=timedelta(minutes=5)
            )
            if isinstance(verdict, Reading):
                store.write_one(verdict)
            seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    store.close()
    return seen / elapsed


# --- latency ---------------------------------------------------------------------------


TICK_SECONDS = 0.005


def reading(n: int) -> bytes:
    """The ``n``th live reading, stamped with the wall clock now."""
    stamp = datetime.now(UTC).isoformat(timespec="microseconds")
    return b'{"customer_id":%d,"timestamp":"%s","heart_rate":%d}' % (
        n % 1000 + 1,
        stamp.encode(),
        60 + n % 40,
    )


def offer(settings: Settings, rate: int, seconds: float) -> float:
    """Send readings stamped with the wall clock at ``rate`` a second; the rate achieved.

    Paced by ticks: every ``TICK_SECONDS`` it sends what is due by then, each reading
    stamped as it is sent (sleeping once per reading cost more than the sending).
    """
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
        }
    )
    count = int(rate * seconds)
    sent = 0
    # The first message waits for the connection, the topic's metadata and the producer
    # id; a reading stamped before that would count the producer's start-up as latency.
    producer.produce(settings.kafka_topic, reading(0), b"1")
    producer.flush(30)
    started = time.perf_counter()
    while sent < count:
        due = min(count, int((time.perf_counter() - started) * rate) + 1)
        while sent < due:
            customer = sent % 1000 + 1
            try:
                producer.produce(settings.kafka_topic, reading(sent), b"%d" % customer)
            except BufferError:
                producer.poll(0.01)
                continue
            sent += 1
        producer.poll(0)
        time.sleep(TICK_SECONDS)
    producer.flush(60)
    return count / (time.perf_counter() - started)


def wait_positioned(port: int, partitions: int, timeout: float = 90) -> None:
    """Until the consumer reads every partition from its position (a reading offered
    before that would wait for the group's assignment and count it as latency)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        positioned = sum(
            line.startswith("heartbeat_consumer_last_progress_timestamp_seconds{")
            for line in scrape(port).splitlines()
        )
        if positioned >= partitions:
            return
        time.sleep(0.2)
    raise SystemExit(f"the latency consumer did not position {partitions} partitions in time")


def p99_latency(
    settings: Settings, conninfo: str, seconds: float
) -> tuple[float, float, int, float]:
    """The consumer's p99 event-to-stored (s), the share within 250 ms, how many, the rate."""
    port = free_port()
    child = spawn("consume", settings, conninfo, METRICS_PORT=str(port))
    try:
        wait_positioned(port, settings.kafka_topic_partitions)
        offered = offer(settings, LIVE_RATE, seconds)
        time.sleep(2)  # the last batch
        text = scrape(port)
        if not text:
            raise SystemExit("the latency consumer's /metrics did not answer")
    finally:
        child.terminate()
        child.wait(60)
    buckets = []
    for line in text.splitlines():
        if line.startswith("heartbeat_event_to_stored_seconds_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1]
    within = next(count for bound, count in buckets if bound == 0.25)
    below, previous = 0.0, 0.0
    p99 = float("inf")
    for bound, count in buckets:
        if count >= 0.99 * total:
            share = (0.99 * total - below) / max(1.0, count - below)
            p99 = previous + (bound - previous) * share
            break
        below, previous = count, bound
    return p99, within / max(1.0, total), int(total), offered


# --- the table -------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument(
        "--producer-readings",
        type=int,
        default=1_000_000,
        help="readings heartbeat produce sends to a topic of their own",
    )
    parser.add_argument("--naive-seconds", type=float, default=15.0)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--scale", action="store_true", help="also 2 and 3 consumer processes")
    parser.add_argument(
        "--consumer-code",
        type=Path,
        help="run heartbeat consume and produce from this folder's heartbeat package (another "
        "checkout's app/), to compare two versions on the same machine",
    )
    args = parser.parse_args()
    if args.consumer_code is not None:
        os.environ["PYTHONPATH"] = str(args.consumer_code.resolve())
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    at_start = load()
    n = args.readings
    rows: list[tuple[str, float, float | None, float | None]] = []
    shares: list[tuple[str, Drain]] = []

    with tempfile.TemporaryDirectory(prefix="heartbeat-bench-") as tmp:
        broker = KafkaBroker(Path(tmp) / "kafka")
        database = PostgresServer(Path(tmp) / "postgres")
        broker.start(wait=False)
        database.start()
        broker.wait_ready()
        try:
            base = Settings(
                _env_file=None,
                kafka_bootstrap_servers=broker.bootstrap_servers,
                kafka_topic="bench",
                kafka_dlq_topic="bench.dlq",
                producer_customers=args.customers,
                metrics_port=0,
            )
            ensure_topics(base, ["bench", "bench.dlq", "bench-produce", "bench-live"])
            ready = payloads(args.customers, n)
            bare_rate = bare_loop(base, "bench", ready)  # the backlog
            produced = min(n, args.producer_readings)
            produce_rate = produce_app(
                base.model_copy(update={"kafka_topic": "bench-produce"}), produced
            )

            admin = database.conninfo
            prepared = prepare(ready)
            del ready
            with partitioned_database(admin, "bench_ceiling_0", base) as conninfo:
                ceilings = [ceiling(conninfo, prepared)]

            runs = [("heartbeat consume, defaults", 1, {})]
            runs.append(
                ("heartbeat consume, batch 5,000", 1, {"CONSUMER_BATCH_MAX_MESSAGES": "5000"})
            )
            if args.scale:
                runs += [("2 consumer processes", 2, {}), ("3 consumer processes", 3, {})]
            services = {
                "PostgreSQL": int(
                    (database.data_dir / "postmaster.pid").read_text().splitlines()[0]
                ),
                "broker": broker.pid or 0,
            }
            for i, (label, processes, env) in enumerate(runs):
                name = f"bench_drain_{i}"
                group = base.model_copy(update={"kafka_consumer_group": name})
                with partitioned_database(admin, name, base) as conninfo:
                    result = drain(group, conninfo, n, processes, services, **env)
                rows.append((label, result.rate, result.cpu_us, result.rss_mb))
                shares.append((label, result))
            naive_group = base.model_copy(update={"kafka_consumer_group": "bench-naive"})
            with partitioned_database(admin, "bench_naive", base) as conninfo:
                naive_rate = naive(naive_group, conninfo, args.naive_seconds)
            rows.append(
                (
                    f"naive writer (INSERT + COMMIT per message, {args.naive_seconds:g} s)",
                    naive_rate,
                    None,
                    None,
                )
            )

            live = base.model_copy(
                update={"kafka_topic": "bench-live", "kafka_consumer_group": "bench-live"}
            )
            with partitioned_database(admin, "bench_live", base) as conninfo:
                p99, within, observed, offered = p99_latency(live, conninfo, args.latency_seconds)
            # Again at the end: the machine is shared, and a ceiling measured low once
            # would flatter every ratio. The higher of the two is the one divided by.
            with partitioned_database(admin, "bench_ceiling_1", base) as conninfo:
                ceilings.append(ceiling(conninfo, prepared))
        finally:
            broker.stop()
            database.stop()

    ceiling_rate = max(ceilings)
    measured = ", then ".join(f"{c:,.0f}" for c in ceilings)
    rows.insert(
        0,
        (
            f"PostgreSQL ceiling (no Kafka, 20k per transaction; {measured}: the higher)",
            ceiling_rate,
            None,
            None,
        ),
    )
    table = [
        (
            label,
            f"{rate:,.0f}",
            f"{rate / ceiling_rate:.2f}x",
            "-" if cpu is None else f"{cpu:.1f} us",
            "-" if rss is None else f"{rss:.0f} MB",
        )
        for label, rate, cpu, rss in rows
    ]
    width = max(len(r[0]) for r in table)
    print(
        f"\nreadings: {n:,} ({args.customers:,} customers, 6 partitions); {at_start} at the start"
    )
    writer, rate_, ratio_, cpu_, rss_ = (
        "writer",
        "readings/s",
        "x ceiling",
        "CPU/reading",
        "peak RSS",
    )
    print(f"| {writer:{width}} | {rate_:>10} | {ratio_:>9} | {cpu_:>11} | {rss_:>8} |")
    print(f"| {'-' * width} | {'-' * 9}: | {'-' * 8}: | {'-' * 10}: | {'-' * 7}: |")
    for label, rate, ratio, cpu, rss in table:
        print(f"| {label:{width}} | {rate:>10} | {ratio:>9} | {cpu:>11} | {rss:>8} |")
    cores = os.cpu_count() or 1
    print(f"\nCPU over each drain, in cores of the machine's {cores}:")
    for label, result in shares:
        per = " + ".join(f"{c:.2f}" for c in result.consumers)
        rest = ", ".join(f"{name} {c:.2f}" for name, c in result.services.items())
        total = sum(result.consumers) + sum(result.services.values())
        print(
            f"  {label}: consumer {per}, {rest}; total {total:.2f} of {cores}; "
            f"{result.load} at its end"
        )
    print(
        f"\nproducer: heartbeat produce {produce_rate:,.0f} readings/s ({produced:,}, generating "
        f"them), bare confluent-kafka loop {bare_rate:,.0f} readings/s (ready payloads): "
        f"{produce_rate / bare_rate:.2f}x"
    )
    print(
        f"latency at {offered:,.0f} readings/s offered for {args.latency_seconds:g} s: p99 "
        f"event-to-stored {p99 * 1000:.0f} ms, {within:.1%} of {observed:,} within 250 ms"
    )
    print(f"{load()} at the end")


if __name__ == "__main__":
    main()
