"""The ``heartbeat`` command: produce, consume, migrate, maintain, stats, tail, dlq, lag,
offsets, operator, settings, completion.

Exit codes: 0 success, 1 failure at run time (e.g. undelivered messages),
2 bad settings or usage (the message names each bad setting).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from heartbeat import __version__, logs
from heartbeat.errors import (
    ConsumerFailed,
    DatabaseUnavailable,
    FatalError,
    GroupActive,
    HeartbeatError,
    KafkaUnavailable,
    MessageRefused,
    MetricsPortUnavailable,
    MigrationsFolderMissing,
    NoRollbackStep,
    SchemaNotMigrated,
    SettingsError,
    TopicNotCreated,
    TopicNotFound,
    TransientError,
    UsageError,
)
from heartbeat.help import Parser
from heartbeat.settings import (
    Settings,
    documented_fields,
    libpq_from_dotenv,
    load_settings,
    read_dotenv,
    sources,
    unknown_names,
)

logger = logging.getLogger("heartbeat")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# How each error that reaches the command line is reported: its exit code, and what went
# wrong, before the error's own message. Every class of heartbeat.errors has its own entry.
REPORTS: dict[type[HeartbeatError], tuple[int, str]] = {
    HeartbeatError: (EXIT_FAILED, ""),
    SettingsError: (EXIT_USAGE, ""),
    UsageError: (EXIT_USAGE, ""),
    TransientError: (EXIT_FAILED, ""),
    KafkaUnavailable: (EXIT_FAILED, ""),  # its messages name KAFKA_BOOTSTRAP_SERVERS
    DatabaseUnavailable: (EXIT_FAILED, "PostgreSQL (DATABASE_URL or PG* variables): "),
    FatalError: (EXIT_FAILED, ""),
    TopicNotCreated: (EXIT_FAILED, "Kafka would not create a topic (create it, or allow it): "),
    TopicNotFound: (EXIT_FAILED, "no such topic (KAFKA_TOPIC, KAFKA_DLQ_TOPIC, --topic): "),
    ConsumerFailed: (EXIT_FAILED, "the Kafka consumer cannot go on: "),
    SchemaNotMigrated: (EXIT_FAILED, "the database schema is not migrated: "),
    MigrationsFolderMissing: (EXIT_FAILED, "no migrations to read: "),
    NoRollbackStep: (EXIT_FAILED, "cannot roll back: "),
    MetricsPortUnavailable: (EXIT_FAILED, "cannot serve metrics: "),
    GroupActive: (EXIT_FAILED, "the consumer group is running: "),
    MessageRefused: (EXIT_FAILED, "Kafka refused a message for good: "),
}
LONG_RUNNING = frozenset({"produce", "consume", "operator"})

if TYPE_CHECKING:
    from heartbeat.store import Store


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="heartbeat",
        description="Heart-rate pipeline: generator -> Kafka -> consumer -> PostgreSQL. "
        "Settings come from the environment and .env; see `heartbeat settings`.",
    )
    parser.add_argument("--version", action="version", version=f"heartbeat {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    produce = sub.add_parser("produce", help="send generated readings to Kafka")
    produce.add_argument(
        "--customers", type=int, dest="producer_customers", help="customers simulated"
    )
    produce.add_argument(
        "--first-customer", type=int, dest="producer_first_customer", help="first customer id"
    )
    produce.add_argument(
        "--rate", type=float, dest="producer_rate", help="messages per second; 0 = unpaced"
    )
    produce.add_argument("--count", type=int, dest="producer_count", help="stop after this many")
    produce.add_argument("--seed", type=int, dest="producer_seed", help="generator seed")
    produce.add_argument("--metrics-port", type=int, dest="metrics_port", help=METRICS_PORT)

    consume = sub.add_parser("consume", help="validate readings and store them in PostgreSQL")
    consume.add_argument(
        "--batch-size", type=int, dest="consumer_batch_max_messages", help="most messages a batch"
    )
    consume.add_argument("--metrics-port", type=int, dest="metrics_port", help=METRICS_PORT)

    migrate = sub.add_parser("migrate", help="apply, list or roll back database migrations")
    migrate.add_argument(
        "action",
        nargs="?",
        choices=["up", "status", "rollback"],
        default="up",
        help="apply what is pending, list each with its state, or undo the newest",
    )
    migrate.add_argument("--steps", type=int, default=1, help="with rollback: how many to undo")
    migrate.add_argument(
        "--yes", action="store_true", help="with rollback: do not ask for confirmation"
    )
    migrate.add_argument(
        "--dry-run", action="store_true", help="with rollback: list what would be undone"
    )
    migrate.add_argument("--json", action="store_true", help="print JSON instead of text")

    maintain = sub.add_parser(
        "maintain",
        help="make partitions ahead, drop expired ones, bring the rollups up to date",
    )
    maintain.add_argument(
        "--every",
        type=_positive(float),
        metavar="SECONDS",
        help="run again every SECONDS until stopped (default: run once)",
    )
    maintain.add_argument("--json", action="store_true", help="one JSON object per run")

    stats = sub.add_parser(
        "stats", help="reading and anomaly counts, per-customer statistics, over a window"
    )
    stats.add_argument(
        "--window",
        type=_positive(float),
        default=3600.0,
        help="seconds of readings counted, ending now; longer than an hour "
        "reads the rollups (per minute, and per hour from the first whole one), in whole "
        "minutes",
    )
    stats.add_argument("--limit", type=_positive(int), default=50, help="most customers listed")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")

    tail = sub.add_parser("tail", help="print messages of a topic with their headers")
    which = tail.add_mutually_exclusive_group()
    which.add_argument("--topic", help="topic to read (default: the readings topic)")
    which.add_argument("--dlq", action="store_true", help="read the dead-letter topic")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest message")
    tail.add_argument("--max-messages", type=_positive(int), help="stop after this many")
    tail.add_argument(
        "--idle-timeout", type=_positive(float), help="stop after this many idle seconds"
    )
    tail.add_argument("--json", action="store_true", help="one JSON object per line")

    dlq = sub.add_parser("dlq", help="count, list or re-drive the dead letters kept in PostgreSQL")
    dlq_actions = dlq.add_subparsers(dest="dlq_action", required=True, metavar="ACTION")
    dlq_count = dlq_actions.add_parser("count", help="dead letters per reason")
    dlq_count.add_argument("--json", action="store_true", help="print JSON instead of a table")
    dlq_list = dlq_actions.add_parser("list", help="the newest dead letters")
    dlq_list.add_argument("--reason", choices=_reasons(), help="only this reason")
    dlq_list.add_argument(
        "--limit", type=_dlq_limit, default=50, help=f"most rows listed (1-{DLQ_MAX_LIMIT})"
    )
    dlq_list.add_argument("--json", action="store_true", help="one JSON object per line")
    redrive = dlq_actions.add_parser(
        "redrive", help="produce chosen dead letters to the readings topic again"
    )
    redrive.add_argument("--reason", choices=_reasons(), help="those of this reason not re-driven")
    redrive.add_argument(
        "--source",
        action="append",
        type=_dlq_source,
        dest="sources",
        metavar="TOPIC:PARTITION:OFFSET",
        help="this dead letter (repeatable), re-driven before or not",
    )
    redrive.add_argument("--all", action="store_true", help="every one not re-driven yet")
    redrive.add_argument("--dry-run", action="store_true", help="say what would be sent")
    redrive.add_argument("--json", action="store_true", help="one JSON object of what was sent")

    lag = sub.add_parser(
        "lag", help="per partition: end offset, stored offset (PostgreSQL), lag, last write"
    )
    _group_and_topic(lag)
    lag.add_argument("--json", action="store_true", help="print JSON instead of a table")

    offsets = sub.add_parser("offsets", help="move a stopped consumer group's stored offsets")
    offsets_actions = offsets.add_subparsers(dest="offsets_action", required=True, metavar="ACTION")
    reset = offsets_actions.add_parser(
        "reset",
        help="set the stored offsets (PostgreSQL, then Kafka's) of a group with no members",
    )
    _group_and_topic(reset)
    to = reset.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true", help="the start of each partition")
    to.add_argument("--to-latest", action="store_true", help="the end: skip what is unread")
    to.add_argument(
        "--to-datetime",
        type=_aware_datetime,
        metavar="ISO",
        help="the first message at or after this time (ISO 8601 with an offset, e.g. "
        "2026-01-01T11:00:00Z)",
    )
    reset.add_argument("--dry-run", action="store_true", help="show what would change")
    reset.add_argument("--json", action="store_true", help="print JSON instead of a table")

    operator = sub.add_parser("operator", help="run the HeartbeatSimulation operator (kopf)")
    operator.add_argument(
        "--namespace",
        action="append",
        dest="operator_namespaces",
        metavar="NS",
        help="serve this namespace (repeatable); default OPERATOR_NAMESPACES, empty = all",
    )
    operator.add_argument("--metrics-port", type=int, dest="metrics_port", help=METRICS_PORT)

    show = sub.add_parser("settings", help="show the effective settings or their documentation")
    show_as = show.add_mutually_exclusive_group()
    show_as.add_argument("--markdown", action="store_true", help="the README's settings table")
    show_as.add_argument("--env-example", action="store_true", help="the content of .env.example")
    show_as.add_argument(
        "--json", action="store_true", help="the effective settings and their origin, as JSON"
    )

    completion = sub.add_parser(
        "completion",
        help="print a shell completion script",
        description='Print a completion script: `eval "$(heartbeat completion bash)"` in '
        "~/.bashrc, or `heartbeat completion zsh > ~/.zfunc/_heartbeat` with ~/.zfunc in "
        "fpath before compinit in ~/.zshrc.",
    )
    completion.add_argument("shell", choices=["bash", "zsh"], help="the shell")
    return parser


METRICS_PORT = "port of /metrics, /healthz, /readyz; 0 picks a free one"


def _group_and_topic(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group", dest="kafka_consumer_group", help="consumer group")
    parser.add_argument("--topic", dest="kafka_topic", help="topic of the readings")


def _aware_datetime(text: str) -> Any:
    from datetime import datetime

    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 date-time, got {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no UTC offset: add Z or +HH:MM so the instant is unambiguous"
        )
    return value


_SETTING_OPTIONS = (
    "producer_customers",
    "producer_first_customer",
    "producer_rate",
    "producer_count",
    "producer_seed",
    "metrics_port",
    "consumer_batch_max_messages",
    "kafka_consumer_group",
    "kafka_topic",
)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {name: getattr(args, name, None) for name in _SETTING_OPTIONS}
    if args.command == "settings" and (args.markdown or args.env_example):
        print(settings_markdown() if args.markdown else env_example(), end="")
        return EXIT_OK
    if args.command == "completion":
        from heartbeat.completion import script

        print(script(_parser(), args.shell), end="")
        return EXIT_OK
    try:
        dotenv = read_dotenv()
        # libpq reads only the environment; PG* lines of .env count as if exported.
        os.environ.update(libpq_from_dotenv(dotenv, os.environ))
        for warning in unknown_names(dotenv, [env for env, _, _ in all_documented_fields()]):
            print(f"heartbeat: warning: {warning}", file=sys.stderr)
        settings = load_settings(**overrides)
        logs.configure(settings)
    except SettingsError as exc:
        print(f"heartbeat: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.command not in LONG_RUNNING and settings.log_level != "DEBUG":
        # A one-shot command reports a PostgreSQL outage once, below, not per pool attempt.
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    commands: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
        "produce": _produce,
        "consume": _consume,
        "migrate": _migrate,
        "maintain": _maintain,
        "stats": _stats,
        "tail": _tail,
        "dlq": _dlq,
        "lag": _lag,
        "offsets": _offsets,
        "operator": _operator,
        "settings": _show_settings,
    }
    try:
        return commands[args.command](settings, args)
    except HeartbeatError as exc:
        return _report(exc)
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        # The reader went away (`| head`): what it wanted it has; nothing more to print.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # a user sees one line, never a traceback
        logger.error("unexpected %s: %s", type(exc).__name__, exc)
        logger.debug("where it happened", exc_info=True)
        return EXIT_FAILED


def _report(exc: HeartbeatError) -> int:
    """One line for ``exc``: what went wrong and its message; the exit code for it."""
    code, what = next(REPORTS[k] for k in type(exc).__mro__ if k in REPORTS)
    logger.error("%s%s", what, exc)
    return code


def _conninfo(settings: Settings) -> str:
    from heartbeat.store import check_conninfo

    conninfo = settings.database_url.get_secret_value()
    check_conninfo(conninfo)
    return conninfo


def _store(settings: Settings, max_size: int = 1) -> Store:
    """The commands' PostgreSQL pool, with the connect, statement and lock timeouts set."""
    from heartbeat.store import Store

    return Store(
        _conninfo(settings),
        max_size=max_size,
        connect_timeout=settings.database_connect_timeout_seconds,
        statement_timeout=settings.database_statement_timeout_seconds,
        lock_timeout=settings.database_lock_timeout_seconds,
    )


def _serve(
    component: str, settings: Settings, checks: tuple[str, ...], build: Callable[..., Any]
) -> int:
    """Run a long-lived component with its metrics server and signal handling."""
    from heartbeat.metrics import new_registry
    from heartbeat.server import Health, MetricsServer
    from heartbeat.shutdown import ShutdownDeadline

    registry = new_registry()
    health = Health(checks, settings.liveness_timeout_seconds)
    # Bound before anything connects, so that a busy port fails at once.
    server = MetricsServer(
        settings.metrics_host, settings.metrics_port_for(component), registry, health
    )
    app = build(registry, health)
    server.start()
    deadline = ShutdownDeadline(settings.shutdown_timeout_seconds)

    def stop(*_: object) -> None:
        deadline.arm()
        app.request_stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    logger.info("heartbeat %s %s starting", component, __version__)
    try:
        return int(app.run())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()


def _produce(settings: Settings, _: argparse.Namespace) -> int:
    from heartbeat.metrics import ProducerMetrics
    from heartbeat.producer import ProducerApp

    return _serve(
        "producer",
        settings,
        ("kafka",),
        lambda registry, health: ProducerApp(
            settings, metrics=ProducerMetrics(registry), health=health
        ),
    )


def _consume(settings: Settings, _: argparse.Namespace) -> int:
    from heartbeat.consumer import ConsumerApp
    from heartbeat.metrics import ConsumerMetrics

    store = _store(settings, max_size=settings.database_pool_size)
    store.open()
    try:
        return _serve(
            "consumer",
            settings,
            ("kafka", "postgres"),
            lambda registry, health: ConsumerApp(
                settings, store=store, metrics=ConsumerMetrics(registry), health=health
            ),
        )
    finally:
        store.close()


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from heartbeat.migrations import Migrator

    with Migrator(
        _conninfo(settings), settings.migrations_dir, settings.database_connect_timeout_seconds
    ) as migrator:
        return _run_migrations(migrator, args)


def _run_migrations(migrator: Any, args: argparse.Namespace) -> int:
    if args.action == "status":
        rows = migrator.status()
        if args.json:
            print(
                json.dumps(
                    [{"id": m.id, "applied": m.applied, "reversible": m.reversible} for m in rows]
                )
            )
            return EXIT_OK
        for m in rows:
            down = "" if m.reversible else "  (no rollback step)"
            print(f"{'applied' if m.applied else 'pending'}  {m.id}{down}")
        return EXIT_OK
    if args.action == "rollback":
        planned = migrator.plan_rollback(args.steps)
        if args.json and args.dry_run:
            print(json.dumps({"dry_run": True, "rolled_back": planned}))
            return EXIT_OK
        print(
            "would roll back (newest first):" if args.dry_run else "to roll back (newest first):",
            file=sys.stderr if args.json else sys.stdout,
        )
        for migration_id in planned:
            print(f"  {migration_id}", file=sys.stderr if args.json else sys.stdout)
        if args.dry_run:
            return EXIT_OK
        if not args.yes and not _confirm("roll back these migrations? their data is lost [y/N] "):
            print("nothing rolled back", file=sys.stderr)
            return EXIT_FAILED
        undone = migrator.rollback(args.steps)
        if args.json:
            print(json.dumps({"dry_run": False, "rolled_back": undone}))
        else:
            print("rolled back: " + ", ".join(undone))
        return EXIT_OK
    applied = migrator.apply()
    if args.json:
        print(json.dumps({"applied": applied}))
    else:
        print("applied: " + (", ".join(applied) or "nothing, the schema is up to date"))
    return EXIT_OK


def _confirm(question: str) -> bool:
    """Ask on a terminal; without one (a script, a pipe) the answer is no: pass --yes."""
    if not sys.stdin.isatty():
        print("heartbeat: not a terminal, so not asking: pass --yes to go ahead", file=sys.stderr)
        return False
    try:
        return input(question).strip().lower() in {"y", "yes"}
    except EOFError:
        return False


def _maintain(settings: Settings, args: argparse.Namespace) -> int:
    import threading

    from heartbeat.maintain import Maintainer

    stop = threading.Event()
    if args.every:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    with _store(settings, max_size=2) as store:  # one holds the advisory lock
        maintainer = Maintainer(store, settings)
        while True:
            try:
                report = maintainer.run()
            except TransientError as exc:
                if not args.every:
                    raise
                logger.error("maintenance not done: %s", exc)
            else:
                if args.json:
                    fields = {"skipped": report.skipped, "done": report.done}
                    print(json.dumps(fields | {"failed": report.failed}), flush=True)
                else:
                    for line in report.lines():
                        print(line, flush=True)
                if report.failed and not args.every:
                    return EXIT_FAILED
            if not args.every or stop.wait(args.every):
                return EXIT_OK


def _stats(settings: Settings, args: argparse.Namespace) -> int:
    from heartbeat import stats

    with _store(settings) as store:
        report = stats.collect(store, window=timedelta(seconds=args.window), limit=args.limit)
    print(stats.render_json(report) if args.json else stats.render_table(report))
    return EXIT_OK


def _tail(settings: Settings, args: argparse.Namespace) -> int:
    from heartbeat.kafka import read_topic
    from heartbeat.tail import render

    topic = settings.kafka_dlq_topic if args.dlq else (args.topic or settings.kafka_topic)
    for record in read_topic(
        settings,
        topic,
        from_beginning=args.from_beginning,
        max_messages=args.max_messages,
        idle_timeout=args.idle_timeout,
    ):
        print(render(record, as_json=args.json), flush=True)
    return EXIT_OK


DLQ_MAX_LIMIT = 100_000


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type: a number of ``kind`` above 0, or a one-line usage error."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0 or value != value or value == float("inf"):
            noun = "whole number" if kind is int else "number"
            raise argparse.ArgumentTypeError(f"expected a {noun} above 0, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _reasons() -> list[str]:
    from heartbeat.validation import Reason

    return [reason.value for reason in Reason]


def _dlq_limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= DLQ_MAX_LIMIT:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 1 to {DLQ_MAX_LIMIT}, got {text!r}"
        )
    return value


def _dlq_source(text: str) -> Any:
    from heartbeat.dead_letter_rows import Source

    try:
        return Source.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _dlq(settings: Settings, args: argparse.Namespace) -> int:
    from heartbeat import dlq

    if args.dlq_action == "redrive" and not (args.reason or args.sources or args.all):
        print(
            "heartbeat dlq redrive: choose what to re-drive:"
            " --reason R, --source TOPIC:PARTITION:OFFSET or --all",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.dlq_action == "redrive" and args.all and (args.reason or args.sources):
        print("heartbeat dlq redrive: --all takes no --reason or --source", file=sys.stderr)
        return EXIT_USAGE
    with _store(settings) as store:
        if args.dlq_action == "count":
            return dlq.show_counts(store, as_json=args.json, out=sys.stdout)
        if args.dlq_action == "list":
            return dlq.show_list(
                store, reason=args.reason, limit=args.limit, as_json=args.json, out=sys.stdout
            )
        choice = dlq.Choice(reason=args.reason, sources=args.sources)
        return dlq.redrive(
            settings,
            store,
            choice,
            dry_run=args.dry_run,
            out=sys.stdout,
            err=sys.stderr,
            as_json=args.json,
        )


def _lag(settings: Settings, args: argparse.Namespace) -> int:
    from heartbeat import lag
    from heartbeat.kafka import GroupAdmin

    group, topic = settings.kafka_consumer_group, settings.kafka_topic
    admin = GroupAdmin(settings)
    with _store(settings) as store:
        rows = lag.collect(
            store,
            admin,
            group=group,
            topic=topic,
            auto_offset_reset=settings.kafka_auto_offset_reset,
        )
    print(
        lag.render_json(group, topic, rows) if args.json else lag.render_table(group, topic, rows)
    )
    return EXIT_OK


def _offsets(settings: Settings, args: argparse.Namespace) -> int:
    from heartbeat import offsets
    from heartbeat.kafka import GroupAdmin

    if args.to_datetime is not None:
        target = offsets.Target("datetime", args.to_datetime)
    else:
        target = offsets.Target("earliest" if args.to_earliest else "latest")
    with _store(settings) as store:
        return offsets.reset(
            store,
            GroupAdmin(settings),
            group=settings.kafka_consumer_group,
            topic=settings.kafka_topic,
            target=target,
            dry_run=args.dry_run,
            as_json=args.json,
            out=sys.stdout,
        )


# What the ``operator`` extra installs; the pipeline's commands never import it.
OPERATOR_EXTRA = frozenset({"kopf", "kubernetes"})


def _operator(settings: Settings, args: argparse.Namespace) -> int:
    try:
        from heartbeat_operator.__main__ import run
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in OPERATOR_EXTRA:
            raise
        raise UsageError(
            f"heartbeat operator needs the operator extra ({exc.name} is not installed):"
            " pip install 'heartbeat[operator]'"
        ) from None

    return run(settings, namespaces=args.operator_namespaces)


def _show_settings(settings: Settings, args: argparse.Namespace) -> int:
    """Each effective value and where it came from, as a comment that .env files allow."""
    origin = sources(os.environ, read_dotenv())
    if args.json:
        shown = settings.model_dump(mode="json")
        print(
            json.dumps(
                {Settings.env_name(n): {"value": v, "from": origin[n]} for n, v in shown.items()}
            )
        )
        return EXIT_OK
    for name, value in settings.model_dump().items():
        line = f"{Settings.env_name(name)}={'' if value is None else value}"
        print(f"{line:<48} # {origin[name]}")
    return EXIT_OK


def all_documented_fields() -> list[tuple[str, str, str]]:
    """Every setting of every process: the pipeline's, then the operator's OPERATOR_* ones."""
    from heartbeat_operator.settings import documented_fields as operator_fields

    return [*documented_fields(), *operator_fields()]


def settings_markdown() -> str:
    lines = ["| Variable | Default | Description |", "| --- | --- | --- |"]
    for env, default, description in all_documented_fields():
        shown = f"`{default}`" if default != "" else "(empty)"
        lines.append(f"| `{env}` | {shown} | {description} |")
    return "\n".join(lines) + "\n"


def env_example() -> str:
    lines = [
        "# Every setting of the heartbeat pipeline, with its default.",
        "# Copy to .env and change what you need; the environment wins over .env.",
        "# PostgreSQL also honours libpq's PG* variables when DATABASE_URL is empty.",
        "# OPERATOR_* settings are read by `heartbeat operator` only.",
    ]
    for env, default, description in all_documented_fields():
        lines += ["", f"# {description}", f"{env}={default}"]
    return "\n".join(lines) + "\n"
