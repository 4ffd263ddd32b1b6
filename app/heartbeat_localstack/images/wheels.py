"""The image's Python dependencies as wheels, fetched on the host and cached outside the repository.

    <cache root>/wheels/<key>/*.whl       (``~/.cache/heartbeat/wheels`` by default)

The key is a hash of the project's dependencies and build requirements (pyproject.toml) and
of the Python version and platform of the image's base, so a change of either is a new
folder. Wheels only (``--only-binary=:all:``): nothing is compiled, here or in the image.

Why on the host rather than pip inside the build: the host's pip already trusts the host's
certificate authorities (where a TLS-intercepting proxy sits, containers do not), so no
certificate ever enters a build; and the folder outlives the engine, so a build on a new
engine with a warm cache needs no network. The folder reaches the build as a small image
(``heartbeat-wheels:<key>``, the wheels at its root) that the Dockerfile mounts; without it
the Dockerfile falls back to PyPI (see the Dockerfile).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from heartbeat_localstack.docker import DockerCLI
from heartbeat_localstack.exceptions import DownloadError
from heartbeat_localstack.images.cache import exclusive
from heartbeat_localstack.maven import cache_root

logger = logging.getLogger(__name__)

COMPLETE_MARKER = ".complete"
OLDEST_MANYLINUX = 17  # manylinux_2_17 (manylinux2014) is the oldest glibc tag still published
TARGET_PROBE = (
    "import platform, sys; "
    "print(f'{sys.version_info[0]}.{sys.version_info[1]}', platform.libc_ver()[1], "
    "platform.machine())"
)


@dataclass(frozen=True)
class Target:
    """Where the wheels must run: a CPython version, a glibc version and a CPU."""

    python: str  # "3.11"
    glibc: str  # "2.36"
    machine: str  # "x86_64"

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    def platforms(self) -> list[str]:
        """Every manylinux tag this glibc runs, newest first, and the legacy alias."""
        major, minor = (int(part) for part in self.glibc.split(".")[:2])
        tags = [
            f"manylinux_{major}_{m}_{self.machine}" for m in range(minor, OLDEST_MANYLINUX - 1, -1)
        ]
        return [*tags, f"manylinux2014_{self.machine}"]


def requirements(pyproject: Path) -> list[str]:
    """What the image installs: the runtime dependencies, the operator extra, the build backend."""
    data = tomllib.loads(pyproject.read_text())
    project = data["project"]
    return [
        *project["dependencies"],
        *project["optional-dependencies"]["operator"],
        *data["build-system"]["requires"],
    ]


def cache_key(reqs: list[str], target: Target) -> str:
    text = json.dumps({"requirements": sorted(reqs), "target": target.__dict__}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def probe_target(cli: DockerCLI, image: str) -> Target:
    """Ask `image`'s Python which version, glibc and CPU it has."""
    result = cli.run(
        ["run", "--rm", "--network", "none", "--entrypoint", "python3", image, "-c", TARGET_PROBE],
        timeout=120,
    )
    python, glibc, machine = result.stdout.split()
    return Target(python=python, glibc=glibc, machine=machine)


class Wheelhouse:
    """The cached wheels for one target, and the image that carries them into a build."""

    def __init__(self, cli: DockerCLI, pyproject: Path, target: Target) -> None:
        self.cli = cli
        self.reqs = requirements(pyproject)
        self.target = target
        self.key = cache_key(self.reqs, target)

    @property
    def folder(self) -> Path:
        return cache_root() / "wheels" / self.key

    @property
    def image(self) -> str:
        return f"heartbeat-wheels:{self.key}"

    def ensure(self) -> str:
        """The wheelhouse image, downloading the wheels first when they are not cached."""
        with exclusive(self.image):
            if not (self.folder / COMPLETE_MARKER).exists():
                self._download()
            if self.cli.image_id(self.image) is None:
                self.cli.import_rootfs(self.folder, self.image)
        return self.image

    def _download(self) -> None:
        partial = self.folder.with_name(self.key + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--only-binary=:all:", "--implementation", "cp",
            "--python-version", self.target.python, "--abi", self.target.abi,
        ]  # fmt: skip
        for platform in self.target.platforms():
            command += ["--platform", platform]
        command += ["--dest", str(partial), *self.reqs]
        logger.info(
            "fetching wheels for Python %s (glibc %s) into %s",
            self.target.python, self.target.glibc, self.folder,
        )  # fmt: skip
        started = time.monotonic()
        result = subprocess.run(command, capture_output=True, text=True, timeout=1200, check=False)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip().splitlines()[-15:]
            raise DownloadError(
                f"pip could not fetch the image's wheels (exit {result.returncode}):\n"
                + "\n".join(output)
            )
        (partial / COMPLETE_MARKER).write_text("\n".join(self.reqs) + "\n")
        shutil.rmtree(self.folder, ignore_errors=True)
        partial.rename(self.folder)
        count = len(list(self.folder.glob("*.whl")))
        logger.info("fetched %d wheels in %.0f s", count, time.monotonic() - started)
