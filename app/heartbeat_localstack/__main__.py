"""Command line: ``python -m heartbeat_localstack up|down|status --dir .stack``."""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from heartbeat_localstack.exceptions import LocalStackError, ServiceStartError
from heartbeat_localstack.maven import KAFKA_VERSION
from heartbeat_localstack.stack import Stack

logger = logging.getLogger("heartbeat_localstack")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m heartbeat_localstack",
        description="Run a real Kafka broker (KRaft) and PostgreSQL as local background processes.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    helps = {
        "up": "start both (or keep the ones running) and write <dir>/env",
        "down": "stop both",
        "status": "show what runs",
    }
    for name, text in helps.items():
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument(
            "--dir", type=Path, default=Path(".stack"), help="state folder (default: .stack)"
        )
        if name == "up":
            command.add_argument(
                "--kafka-version", default=KAFKA_VERSION, help=f"default: {KAFKA_VERSION}"
            )
    return parser


def _explain(exc: ServiceStartError, directory: Path) -> str:
    paragraph = (
        f"error: {exc.component} did not start: {exc.reason}. Its log is {exc.log_path}. "
        f"Whatever this command had started was stopped again; fix the cause and run "
        f"'python -m heartbeat_localstack up --dir {directory}' again."
    )
    text = textwrap.fill(paragraph, width=100)
    if exc.log_tail:
        text += "\n\nLast lines of the log:\n" + textwrap.indent(exc.log_tail, "  ")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="heartbeat_localstack: %(message)s", stream=sys.stderr
    )
    try:
        if args.command == "up":
            stack = Stack(args.dir, kafka_version=args.kafka_version)
            stack.up()
            print(
                f"Kafka at {stack.kafka.bootstrap_servers}, PostgreSQL at "
                f"{stack.postgres.host}:{stack.postgres.port}."
            )
            print(f"Settings in {stack.env_path}; in a shell: set -a; . {stack.env_path}; set +a")
        elif args.command == "down":
            Stack(args.dir).down()
        else:
            for component, state in Stack(args.dir).status().items():
                print(f"{component}: {state}")
    except ServiceStartError as exc:
        print(_explain(exc, args.dir), file=sys.stderr)
        return 1
    except LocalStackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
