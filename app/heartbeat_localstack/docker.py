"""A Docker engine on demand, and the one place that runs the docker CLI.

    python -m heartbeat_localstack.docker up --dir .stack      start dockerd unless one answers
    python -m heartbeat_localstack.docker down --dir .stack    stop the one `up` started
    python -m heartbeat_localstack.docker status --dir .stack  say which engine answers

``up`` is a no-op when an engine already answers (a user's Docker Desktop, a system service,
or one started earlier): nothing is started then, and ``down`` leaves it alone. Otherwise it
starts ``dockerd`` detached, as root, with default settings, and keeps in ``<dir>``:

    dockerd.pid            the pid, to find it again (``down`` stops only this process)
    dockerd.log            its log
    dockerd/engine.pid     dockerd's own pid file

Images and containers live in dockerd's default data root (/var/lib/docker), so they
outlast a ``down``; as with any dockerd, ip_forward=1, its iptables chains and the docker0
bridge stay behind too. Installing the engine is ``.ci/system-deps docker`` (``make docker``).

`DockerCLI` runs ``docker`` commands for the rest of the package. Image builds need
BuildKit (the Dockerfiles use ``RUN --mount``): a CLI with the buildx plugin does it by
itself; without buildx, Debian's 20.10 CLI (/usr/bin/docker, from docker.io) has BuildKit
built in and gets ``DOCKER_BUILDKIT=1``.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from heartbeat_localstack import console
from heartbeat_localstack.exceptions import LocalStackError, MissingToolError, ServiceStartError
from heartbeat_localstack.process import DetachedProcess, tail

logger = logging.getLogger(__name__)

COMPONENT = "Docker engine"
SOCKET = "unix:///var/run/docker.sock"
DEBIAN_CLI = "/usr/bin/docker"
# The CLI release from which `docker build` needs the buildx plugin for BuildKit.
BUILDX_REQUIRED_FROM = 23


class DockerError(LocalStackError):
    """A docker command failed; the message carries the command and its output's end."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output  # the command's own last words, when it gave any


@dataclass(frozen=True)
class BuildCommand:
    """How to run a BuildKit build here: the argv prefix and the environment it needs."""

    argv: tuple[str, ...]
    env: Mapping[str, str]


def client_major(version: str) -> int:
    """28 for "28.2.2", 20 for "20.10.24+dfsg1"; 0 when the text is not a version."""
    match = re.match(r"\s*(\d+)\.", version)
    return int(match.group(1)) if match else 0


class DockerCLI:
    """The docker command line, with timeouts, so a missing engine never hangs a caller."""

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or shutil.which("docker") or DEBIAN_CLI

    def run(
        self,
        args: Sequence[str],
        *,
        timeout: float = 60.0,
        check: bool = True,
        stdin: bytes | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """`docker ARGS`; raises DockerError on failure (when `check`) or timeout."""
        if not Path(self.binary).exists() and shutil.which(self.binary) is None:
            raise MissingToolError("the docker CLI is not installed; run make docker")
        command = [self.binary, *args]
        try:
            result = subprocess.run(
                command,
                input=stdin.decode() if stdin is not None else None,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DockerError(
                f"docker {' '.join(args)} gave no answer within {timeout:.0f} s"
            ) from None
        if check and result.returncode != 0:
            output = (result.stderr or result.stdout).strip()
            raise DockerError(_failure(args, result), output.splitlines()[-1] if output else "")
        return result

    def server_version(self, timeout: float = 10.0) -> str | None:
        """The engine's version when one answers, else None (quickly: no engine, no wait)."""
        try:
            result = self.run(
                ["version", "--format", "{{.Server.Version}}"], timeout=timeout, check=False
            )
        except (DockerError, MissingToolError):
            return None
        version = result.stdout.strip()
        return version if result.returncode == 0 and version else None

    def client_version(self) -> str:
        result = self.run(["version", "--format", "{{.Client.Version}}"], check=False)
        return result.stdout.strip()

    def image_id(self, name: str) -> str | None:
        """The local image's id, or None when the engine has no image by that name."""
        result = self.run(["image", "inspect", "--format", "{{.Id}}", name], check=False)
        return result.stdout.strip() if result.returncode == 0 else None

    def image_size(self, name: str) -> int:
        """The image's size in bytes, as `docker images` counts it (every layer, unshared)."""
        result = self.run(["image", "inspect", "--format", "{{.Size}}", name])
        return int(result.stdout.strip())

    def import_rootfs(self, root: Path, image: str, changes: Sequence[str] = ()) -> None:
        """`tar -C ROOT -c . | docker import - IMAGE`: a root file system becomes an image."""
        command = [self.binary, "import"]
        for change in changes:
            command += ["--change", change]
        command += ["-", image]
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(root), "-c", "."],
            stdout=subprocess.PIPE,
        )
        try:
            result = subprocess.run(
                command, stdin=tar.stdout, capture_output=True, text=True, timeout=600, check=False
            )
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            tar_status = tar.wait()
        if result.returncode != 0 or tar_status != 0:
            raise DockerError(
                _failure(["import", "-", image], result) + f" (tar exit {tar_status})"
            )

    def save_into(
        self, images: Sequence[str], consumer: Sequence[str], timeout: float = 600
    ) -> None:
        """`docker save IMAGES | CONSUMER`: hand images to another image store."""
        save = subprocess.Popen([self.binary, "save", *images], stdout=subprocess.PIPE)
        try:
            result = subprocess.run(
                list(consumer),
                stdin=save.stdout,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        finally:
            if save.stdout is not None:
                save.stdout.close()
            save_status = save.wait()
        if result.returncode != 0 or save_status != 0:
            raise DockerError(
                _failure(["save", *images], result) + f" (docker save exit {save_status})"
            )

    def build_command(self) -> BuildCommand:
        """A `docker build` that uses BuildKit with this machine's CLIs (see module docstring)."""
        candidates = [self.binary]
        if DEBIAN_CLI not in candidates and Path(DEBIAN_CLI).exists():
            candidates.append(DEBIAN_CLI)
        for binary in candidates:
            cli = DockerCLI(binary)
            major = client_major(cli.client_version())
            if 0 < major < BUILDX_REQUIRED_FROM:
                return BuildCommand((binary, "build"), {"DOCKER_BUILDKIT": "1"})
            if major and cli.run(["buildx", "version"], check=False).returncode == 0:
                return BuildCommand((binary, "buildx", "build", "--load"), {})
        raise MissingToolError(
            "no docker CLI here can build with BuildKit: install the buildx plugin, or "
            "Debian's docker.io (its /usr/bin/docker has BuildKit built in): run make docker"
        )

    def build(
        self, args: Sequence[str], *, log_path: Path, timeout: float = 3600.0
    ) -> subprocess.CompletedProcess[str]:
        """A BuildKit build (`args` are build options and the context); output to `log_path`.

        The progress goes to the log in plain form; a failure raises DockerError with the
        last lines, which name the failing step.
        """
        build = self.build_command()
        command = [*build.argv, "--progress", "plain", *args]
        env = {**os.environ, **build.env}
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a") as log:
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            try:
                result = subprocess.run(
                    command,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise DockerError(
                    f"the build gave no result within {timeout:.0f} s; see {log_path}"
                ) from None
        if result.returncode != 0:
            raise DockerError(
                f"docker build failed (exit {result.returncode}); its log is {log_path}:\n"
                + tail(log_path, 25)
            )
        return result


def _failure(args: Sequence[str], result: subprocess.CompletedProcess[str]) -> str:
    output = (result.stderr or result.stdout).strip().splitlines()[-10:]
    return f"docker {' '.join(args)} failed (exit {result.returncode}): " + "\n".join(output)


class DockerEngine:
    """A dockerd this package starts, with its pid and log in `state_dir`."""

    def __init__(self, state_dir: Path, *, ready_timeout: float = 60.0) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.ready_timeout = ready_timeout
        self.cli = DockerCLI()
        self._process = DetachedProcess(self.state_dir / "dockerd.pid", str(self.own_pid_file))

    @property
    def log_path(self) -> Path:
        return self.state_dir / "dockerd.log"

    @property
    def own_pid_file(self) -> Path:
        """dockerd's own pid file; its path in dockerd's command line marks the process as ours."""
        return self.state_dir / "dockerd" / "engine.pid"

    def started_here(self) -> int | None:
        """The pid of the dockerd that `up` started from this state dir, if it runs."""
        return self._process.pid()

    def up(self) -> str:
        """Make sure an engine answers; start dockerd only when none does. Returns a sentence."""
        version = self.cli.server_version()
        if version is not None:
            pid = self.started_here()
            whose = f"the one make docker started, pid {pid}" if pid else "not make docker's"
            return f"a Docker engine {version} already answers ({whose}); nothing started"
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise MissingToolError(
                "no Docker engine answers and dockerd is not installed; run make docker"
            )
        if os.geteuid() != 0:
            raise LocalStackError(
                "no Docker engine answers, and starting one needs root: start Docker yourself "
                "(Docker Desktop, or `sudo make docker`)"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.own_pid_file.parent.mkdir(parents=True, exist_ok=True)
        argv = [dockerd, "--host", SOCKET, "--pidfile", str(self.own_pid_file)]
        started = time.monotonic()
        pid = self._process.spawn(argv, self.log_path, cwd=self.state_dir)
        logger.info("started dockerd as pid %d; its log is %s", pid, self.log_path)
        self._wait_ready(started)
        version = self.cli.server_version() or "?"
        return (
            f"Docker engine {version} answers after {time.monotonic() - started:.1f} s (pid {pid})"
        )

    def down(self) -> str:
        """Stop the dockerd that `up` started here; any other engine is left alone."""
        pid = self.started_here()
        if pid is None:
            return "no Docker engine started by make docker runs; nothing stopped"
        # dockerd stops its containers first (up to 15 s each, in parallel), then containerd.
        self._process.stop(timeout=60)
        return f"stopped the Docker engine (pid {pid})"

    def status(self) -> str:
        version = self.cli.server_version()
        pid = self.started_here()
        if version is None:
            return "no Docker engine answers"
        whose = (
            f"started by make docker, pid {pid}, log {self.log_path}"
            if pid
            else "not started by make docker"
        )
        return f"Docker engine {version} answers ({whose})"

    def _wait_ready(self, started: float) -> None:
        deadline = started + self.ready_timeout
        while self.cli.server_version(timeout=5) is None:
            if not self._process.is_running():
                raise self._start_error("dockerd exited")
            if time.monotonic() > deadline:
                error = self._start_error(f"no answer within {self.ready_timeout:.0f} s")
                self._process.stop(timeout=30)
                raise error
            time.sleep(0.5)

    def _start_error(self, reason: str) -> ServiceStartError:
        return ServiceStartError(COMPONENT, reason, self.log_path, tail(self.log_path))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m heartbeat_localstack.docker",
        description="Start a Docker engine when none answers; stop only the one started here.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("up", "start dockerd unless an engine already answers"),
        ("down", "stop the dockerd that up started"),
        ("status", "say which engine answers; exit status 3 when none does"),
    ):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument(
            "--dir", type=Path, default=Path(".stack"), help="state folder (default: .stack)"
        )
    return parser


def _command(args: argparse.Namespace) -> int:
    engine = DockerEngine(args.dir)
    if args.command == "up":
        print(engine.up())
        return 0
    if args.command == "down":
        print(engine.down())
        return 0
    print(engine.status())
    return 0 if engine.cli.server_version() else 3


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return console.run(
        lambda: _command(args), f"python -m heartbeat_localstack.docker up --dir {args.dir}"
    )


if __name__ == "__main__":
    sys.exit(main())
