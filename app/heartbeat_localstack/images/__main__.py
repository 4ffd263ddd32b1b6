"""``python -m heartbeat_localstack.images base|services|app|all``.

base       the base images: public where a registry answers, else made with debootstrap and
           kept as tars in the cache (reloaded in seconds afterwards)
services   the Kafka and PostgreSQL images the testcontainers fixtures run
app        the repository's Dockerfile as heartbeat:dev (--tag to change it); prints its size
all        every one of them

Needs an engine that answers (`make docker`). HEARTBEAT_BASE_IMAGES=public|local|auto picks
the bases; the cache is $HEARTBEAT_CACHE_DIR (default ~/.cache/heartbeat).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from heartbeat_localstack import console
from heartbeat_localstack.docker import DockerCLI
from heartbeat_localstack.exceptions import LocalStackError
from heartbeat_localstack.images import build


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m heartbeat_localstack.images",
        description="Build the base images, the test services' images and the project's image.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("base", help="the base images (public, or local from debootstrap)")
    commands.add_parser("services", help="the Kafka and PostgreSQL images for the tests")
    for name, text in (("app", "the project's image"), ("all", "every image")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--tag", default=build.APP_IMAGE, help=f"default: {build.APP_IMAGE}")
        command.add_argument(
            "--context", type=Path, default=Path("."), help="the repository (default: .)"
        )
        command.add_argument(
            "--pypi",
            action="store_true",
            help="let pip fetch from PyPI inside the build (host CA as a BuildKit secret) "
            "instead of the host's cached wheels",
        )
    return parser


def _command(args: argparse.Namespace) -> int:
    cli = DockerCLI()
    if cli.server_version() is None:
        raise LocalStackError("no Docker engine answers; run make docker first")
    started = time.monotonic()
    chosen = build.bases(cli)
    print(f"base images ({chosen.origin}): {chosen.debian}, {chosen.python}, {chosen.python_build}")
    if args.command in ("services", "all"):
        print(f"Kafka image: {build.kafka_image(cli)}")
        print(f"PostgreSQL image: {build.postgres_image(cli)}")
    if args.command in ("app", "all"):
        image = build.build_app(cli, args.context.resolve(), args.tag, wheelhouse=not args.pypi)
        print(image.describe())
        print(f"try it: docker run --rm --read-only {image.name} --help")
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return console.run(
        lambda: _command(args), f"python -m heartbeat_localstack.images {args.command}"
    )


if __name__ == "__main__":
    sys.exit(main())
