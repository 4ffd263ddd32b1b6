"""Base images: the public ones where a registry answers, else local ones made with debootstrap.

Local bases, each cached as a ``docker save`` tar (see `heartbeat_localstack.images.cache`):

    heartbeat-base/debian:bookworm-<rev>         debootstrap --variant=minbase, trimmed
    heartbeat-base/python:3.11-bookworm-<rev>    + Debian's python3 and ca-certificates
    heartbeat-base/python-build:3.11-bookworm-<rev>   + pip and venv, for build stages only

Bump `REVISION` when a recipe changes: the tags change with it, so an old tar is never reused.
Their public counterparts are ``debian:bookworm-slim`` and ``python:3.12-slim``.

``HEARTBEAT_BASE_IMAGES`` picks: ``public``, ``local``, or ``auto`` (the default): public when
the engine has both public images or can pull them, local otherwise. The choice is logged.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from heartbeat_localstack.docker import DockerCLI, DockerError
from heartbeat_localstack.exceptions import LocalStackError, MissingToolError
from heartbeat_localstack.images.cache import ImageCache, exclusive, tar_path
from heartbeat_localstack.maven import cache_root
from heartbeat_localstack.process import tail

logger = logging.getLogger(__name__)

SUITE = "bookworm"
REVISION = "1"
SETTING = "HEARTBEAT_BASE_IMAGES"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PULL_TIMEOUT = 120.0


@dataclass(frozen=True)
class BaseImages:
    """The images every build starts from, and where they came from ("public" or "local")."""

    debian: str
    python: str
    python_build: str
    origin: str


PUBLIC = BaseImages(
    debian=f"debian:{SUITE}-slim",
    python="python:3.12-slim",
    python_build="python:3.12-slim",
    origin="public",
)
LOCAL = BaseImages(
    debian=f"heartbeat-base/debian:{SUITE}-{REVISION}",
    python=f"heartbeat-base/python:3.11-{SUITE}-{REVISION}",
    python_build=f"heartbeat-base/python-build:3.11-{SUITE}-{REVISION}",
    origin="local",
)

# Like Debian's own slim images: no documentation, manuals or translations, now or later.
DPKG_EXCLUDES = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
"""
APT_SETTINGS = """\
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
"""
TRIMMED = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "dev",
    "proc",
    "sys",
    "tmp",
)
ROOTFS_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["bash"]',
)
PYTHON_DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN apt-get update \\
    && apt-get install -y --no-install-recommends python3 ca-certificates \\
    && ln -s python3 /usr/bin/python \\
    && rm -rf /var/lib/apt/lists/*
"""
PYTHON_BUILD_DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN apt-get update \\
    && apt-get install -y --no-install-recommends python3-pip python3-venv \\
    && rm -rf /var/lib/apt/lists/*
"""


def decide(setting: str | None) -> str:
    """ "public", "local" or "auto" for a HEARTBEAT_BASE_IMAGES value; raises on anything else."""
    choice = (setting or "auto").strip().lower()
    if choice not in ("public", "local", "auto"):
        raise LocalStackError(f"{SETTING}={setting!r}: expected public, local or auto")
    return choice


def debian_mirrors(sources: Iterable[str]) -> tuple[str, str | None]:
    """The Debian mirror and security mirror named in apt sources (one-line or deb822 text)."""
    mirror: str | None = None
    security: str | None = None
    for text in sources:
        for uri, suites in _entries(text):
            if f"{SUITE}-security" in suites or "debian-security" in uri:
                security = security or uri
            elif SUITE in suites and "debian" in uri:
                mirror = mirror or uri
    return mirror or DEFAULT_MIRROR, security


def _entries(text: str) -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for line in text.splitlines():  # one-line style: deb [options] URI SUITE COMPONENTS
        match = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
        if match:
            found.append((match.group(1), [match.group(2)]))
    for stanza in re.split(r"\n\s*\n", text):  # deb822 style
        fields = dict(re.findall(r"(?m)^(\w[\w-]*):\s*(.*)$", stanza))
        if fields.get("Types", "").split()[:1] == ["deb"] and "URIs" in fields:
            for uri in fields["URIs"].split():
                found.append((uri, fields.get("Suites", "").split()))
    return found


def sources_list(mirror: str, security: str | None) -> str:
    lines = [f"deb {mirror} {SUITE} main", f"deb {mirror} {SUITE}-updates main"]
    if security:
        lines.append(f"deb {security} {SUITE}-security main")
    return "\n".join(lines) + "\n"


def choose(cli: DockerCLI, setting: str | None = None) -> BaseImages:
    """The base images to build from, public or local, by HEARTBEAT_BASE_IMAGES; logs why."""
    choice = decide(setting if setting is not None else os.environ.get(SETTING))
    if choice == "local":
        logger.info("base images: local (%s=local)", SETTING)
        return LOCAL
    missing = [image for image in _public_images() if cli.image_id(image) is None]
    if not missing:
        logger.info("base images: public %s (already in the engine)", ", ".join(_public_images()))
        return PUBLIC
    for image in missing:
        started = time.monotonic()
        try:
            cli.run(["pull", "--quiet", image], timeout=PULL_TIMEOUT)
        except DockerError as exc:
            if choice == "public":
                raise LocalStackError(
                    f"{SETTING}=public, but {image} cannot be pulled: {exc}"
                ) from None
            reason = exc.output or str(exc)
            logger.info(
                "base images: local, made with debootstrap (no registry reachable: pulling %s "
                "failed after %.1f s: %s)",
                image,
                time.monotonic() - started,
                reason,
            )
            return LOCAL
    logger.info("base images: public %s (pulled from the registry)", ", ".join(_public_images()))
    return PUBLIC


def _public_images() -> tuple[str, ...]:
    return tuple(dict.fromkeys((PUBLIC.debian, PUBLIC.python, PUBLIC.python_build)))


class LocalBases:
    """Makes the local base images once and keeps them as tars; reloads them afterwards."""

    def __init__(self, cli: DockerCLI, *, log_dir: Path | None = None) -> None:
        self.cli = cli
        self.cache = ImageCache(cli)
        self.log_dir = log_dir or cache_root() / "images" / "logs"

    def ensure(self) -> BaseImages:
        """Every local base in the engine: from the engine, from its tar, or built now."""
        self._ensure(LOCAL.debian, self._debootstrap)
        self._ensure(
            LOCAL.python, lambda: self._layer(LOCAL.python, PYTHON_DOCKERFILE, LOCAL.debian)
        )
        self._ensure(
            LOCAL.python_build,
            lambda: self._layer(LOCAL.python_build, PYTHON_BUILD_DOCKERFILE, LOCAL.python),
        )
        return LOCAL

    def _ensure(self, image: str, build: Callable[[], None]) -> None:
        if self.cache.restore(image):
            return
        with exclusive(image):
            if self.cache.restore(image):  # another run made it meanwhile
                return
            started = time.monotonic()
            logger.info("building the base image %s (once; kept as %s)", image, tar_path(image))
            build()
            logger.info("built %s in %.0f s", image, time.monotonic() - started)
            self.cache.store(image)

    def _layer(self, image: str, dockerfile: str, base: str) -> None:
        with tempfile.TemporaryDirectory(prefix="heartbeat-base-") as context:
            Path(context, "Dockerfile").write_text(dockerfile)
            self.cli.build(
                ["--build-arg", f"BASE={base}", "--tag", image, context],
                log_path=self.log_dir / "base.log",
            )

    def _debootstrap(self) -> None:
        debootstrap = shutil.which("debootstrap")
        if debootstrap is None:
            raise MissingToolError(
                "debootstrap makes the local base image and is not installed; run make docker"
            )
        if os.geteuid() != 0:
            raise LocalStackError("debootstrap needs root to make the local base image")
        mirror, security = debian_mirrors(_host_sources())
        log_path = self.log_dir / "debootstrap.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        # On the cache's file system, so a rootfs of a few hundred MB does not fill /tmp.
        with tempfile.TemporaryDirectory(prefix="rootfs-", dir=log_path.parent) as work:
            root = Path(work) / "rootfs"
            command = [debootstrap, "--variant=minbase", SUITE, str(root), mirror]
            logger.info("debootstrap %s from %s (about a minute; log %s)", SUITE, mirror, log_path)
            with log_path.open("w") as log:
                result = subprocess.run(
                    command, stdout=log, stderr=subprocess.STDOUT, timeout=1800, check=False
                )
            if result.returncode != 0:
                raise LocalStackError(
                    f"debootstrap failed (exit {result.returncode}); its log is {log_path}:\n"
                    + tail(log_path, 15)
                )
            _configure_rootfs(root, sources_list(mirror, security))
            self.cli.import_rootfs(root, LOCAL.debian, ROOTFS_CHANGES)


def _host_sources() -> list[str]:
    paths = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    texts = []
    for path in paths:
        if path.suffix in (".list", ".sources") and path.is_file():
            texts.append(path.read_text(errors="replace"))
    return texts


def _configure_rootfs(root: Path, sources: str) -> None:
    """Trim what debootstrap leaves (downloaded .debs, lists, docs) and set apt up for images."""
    for relative in TRIMMED:
        folder = root / relative
        if folder.is_dir():
            for entry in folder.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
    (root / "tmp").chmod(0o1777)
    (root / "etc/apt/sources.list").write_text(sources)
    for stale in (root / "etc/apt/sources.list.d").glob("*"):
        stale.unlink()
    (root / "etc/dpkg/dpkg.cfg.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/dpkg/dpkg.cfg.d/heartbeat-slim").write_text(DPKG_EXCLUDES)
    (root / "etc/apt/apt.conf.d/90heartbeat-slim").write_text(APT_SETTINGS)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
