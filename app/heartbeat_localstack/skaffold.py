"""What skaffold.yaml's ``local-node`` profile needs from this machine: names, and a hook.

``python -m heartbeat_localstack.skaffold env --dir .stack`` prints ``export NAME=value``
lines: the base, build and wheelhouse images the project's image is built from, the local
Kafka and PostgreSQL images with the users they run as, the Python and state folder of the
hook, and a ``PATH`` whose ``docker`` builds with BuildKit and whose ``helm`` and ``kubectl``
are the local cluster's. The profile reads them as ``{{.NAME}}`` templates, so no registry is
needed for any image.
``load --dir .stack IMAGE`` is the profile's after-build hook: it copies the image skaffold
just built from the Docker engine into the running real node's containerd.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

from heartbeat_localstack.cluster import control_plane, local_images
from heartbeat_localstack.docker import DockerCLI
from heartbeat_localstack.exceptions import LocalStackError
from heartbeat_localstack.images import build
from heartbeat_localstack.images.wheels import Wheelhouse, probe_target

#: The profile's templates, in the order they are printed.
NAMES = (
    "HEARTBEAT_BASE_IMAGE",
    "HEARTBEAT_BUILD_IMAGE",
    "HEARTBEAT_WHEELHOUSE",
    "HEARTBEAT_KAFKA_IMAGE",
    "HEARTBEAT_KAFKA_UID",
    "HEARTBEAT_KAFKA_GID",
    "HEARTBEAT_POSTGRES_IMAGE",
    "HEARTBEAT_POSTGRES_UID",
    "HEARTBEAT_POSTGRES_GID",
    "HEARTBEAT_PYTHON",
    "HEARTBEAT_STACK_DIR",
    "DOCKER_BUILDKIT",
    "PATH",
)


def profile_env(
    python: str,
    build_image: str,
    wheelhouse: str,
    images: local_images.LocalImages,
    state_dir: Path,
    path: str,
) -> dict[str, str]:
    """The values of the ``local-node`` profile's templates, and the hook's environment."""
    return {
        "HEARTBEAT_BASE_IMAGE": python,
        "HEARTBEAT_BUILD_IMAGE": build_image,
        "HEARTBEAT_WHEELHOUSE": wheelhouse,
        "HEARTBEAT_KAFKA_IMAGE": images.kafka,
        "HEARTBEAT_KAFKA_UID": str(images.kafka_user.uid),
        "HEARTBEAT_KAFKA_GID": str(images.kafka_user.gid),
        "HEARTBEAT_POSTGRES_IMAGE": images.postgres,
        "HEARTBEAT_POSTGRES_UID": str(images.postgres_user.uid),
        "HEARTBEAT_POSTGRES_GID": str(images.postgres_user.gid),
        "HEARTBEAT_PYTHON": sys.executable,
        "HEARTBEAT_STACK_DIR": str(state_dir),
        "DOCKER_BUILDKIT": "1",
        "PATH": path,
    }


def exports(env: Mapping[str, str]) -> str:
    """``export`` lines a shell can evaluate."""
    return "".join(f"export {name}={shlex.quote(env[name])}\n" for name in NAMES)


def search_path(state_dir: Path, docker: str, inherited: str) -> str:
    """A PATH with skaffold's `docker` (a link to `docker`) and the cluster's helm and kubectl
    in front of `inherited`."""
    tools = state_dir / "skaffold" / "bin"
    tools.mkdir(parents=True, exist_ok=True)
    link = tools / "docker"
    link.unlink(missing_ok=True)
    link.symlink_to(docker)
    return os.pathsep.join([str(tools), str(state_dir / "bin"), inherited])


def machine_env(context: Path, state_dir: Path) -> dict[str, str]:
    """The template values on this machine (the images made or reloaded when missing)."""
    cli = DockerCLI()
    images = local_images.ensure(cli)
    chosen = build.bases(cli)
    target = probe_target(cli, chosen.python_build)
    wheelhouse = Wheelhouse(cli, context / "pyproject.toml", target).ensure()
    # skaffold runs `docker build` with DOCKER_BUILDKIT=1: the CLI that can do that here.
    docker = cli.build_command().argv[0]
    path = search_path(state_dir, docker, os.environ.get("PATH", ""))
    return profile_env(chosen.python, chosen.python_build, wheelhouse, images, state_dir, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m heartbeat_localstack.skaffold",
        description="The values and the image hook of skaffold.yaml's local-node profile.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    env_cmd = commands.add_parser("env", help="print the profile's template values")
    env_cmd.add_argument("--context", type=Path, default=Path("."), help="the repository")
    env_cmd.add_argument("--dir", type=Path, default=Path(".stack"), help="state folder")
    load_cmd = commands.add_parser("load", help="copy an image into the running real node")
    load_cmd.add_argument("--dir", type=Path, default=Path(".stack"), help="state folder")
    load_cmd.add_argument("image")
    args = parser.parse_args(argv)
    try:
        if args.command == "env":
            sys.stdout.write(exports(machine_env(args.context, args.dir.resolve())))
        else:
            control_plane.load_images(args.dir, [args.image])
    except LocalStackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
