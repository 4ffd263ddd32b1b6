"""Command line: ``python -m heartbeat_localstack up|down|status --dir .stack``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from heartbeat_localstack import console
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
            command.add_argument(
                "--secure",
                action="store_true",
                help="add SASL_SSL (SCRAM-SHA-512) and mutual-TLS listeners to Kafka and TLS to "
                "PostgreSQL, under a throw-away CA in <dir>/tls",
            )
    return parser


def _command(args: argparse.Namespace) -> int:
    if args.command == "up":
        stack = Stack(args.dir, kafka_version=args.kafka_version, secure=args.secure)
        stack.up()
        print(
            f"Kafka at {stack.kafka.bootstrap_servers}, PostgreSQL at "
            f"{stack.postgres.host}:{stack.postgres.port}."
        )
        print(f"Settings in {stack.env_path}; in a shell: set -a; . {stack.env_path}; set +a")
        if stack.secure:
            print(
                f"Kafka SASL_SSL and PostgreSQL verify-full in {stack.env_path}; mutual TLS in "
                f"{stack.mtls_env_path}."
            )
    elif args.command == "down":
        Stack(args.dir).down()
    else:
        for component, state in Stack(args.dir).status().items():
            print(f"{component}: {state}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return console.run(
        lambda: _command(args), f"python -m heartbeat_localstack up --dir {args.dir}"
    )


if __name__ == "__main__":
    sys.exit(main())
