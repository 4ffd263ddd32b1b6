"""The images built here: the project's own, and Kafka and PostgreSQL for the tests.

    heartbeat:dev                        the repository's Dockerfile (tag overridable)
    heartbeat-kafka:<kafka>-<digest>     KRaft node from the cached jars + Debian's JRE
    heartbeat-postgres:15-<digest>       Debian's PostgreSQL 15, started like the official image

The service images' tags carry a digest of their recipe (Dockerfile, scripts, base image,
Kafka version), so a changed recipe is a new image; they are kept as ``docker save`` tars
like the base images, since a JRE or PostgreSQL from apt takes a minute or two to install.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from heartbeat_localstack.docker import DockerCLI
from heartbeat_localstack.images import base
from heartbeat_localstack.images.cache import ImageCache, exclusive
from heartbeat_localstack.images.wheels import Wheelhouse, probe_target
from heartbeat_localstack.maven import KAFKA_VERSION, cache_root, kafka_libs

logger = logging.getLogger(__name__)

RECIPES = Path(__file__).parent
APP_IMAGE = "heartbeat:dev"
POSTGRES_MAJOR = "15"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def log_dir() -> Path:
    return cache_root() / "images" / "logs"


def recipe_digest(folder: Path, *extra: str) -> str:
    """A short digest of every file in a recipe folder and of `extra` (base image, versions)."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for text in extra:
        digest.update(text.encode() + b"\0")
    return digest.hexdigest()[:12]


_chosen: dict[str, base.BaseImages] = {}


def bases(cli: DockerCLI) -> base.BaseImages:
    """The chosen base images, present in the engine (made or reloaded when local).

    Chosen once per process: asking a registry again would only repeat the answer.
    """
    if "bases" not in _chosen:
        chosen = base.choose(cli)
        if chosen.origin == "local":
            base.LocalBases(cli).ensure()
        _chosen["bases"] = chosen
    return _chosen["bases"]


@dataclass(frozen=True)
class BuiltImage:
    name: str
    size_bytes: int
    seconds: float

    def describe(self) -> str:
        return f"{self.name}: {self.size_bytes / 1e6:.0f} MB, built in {self.seconds:.0f} s"


def build_app(
    cli: DockerCLI,
    context: Path,
    tag: str = APP_IMAGE,
    *,
    wheelhouse: bool = True,
) -> BuiltImage:
    """Build the repository's Dockerfile as `tag` on the chosen base.

    With `wheelhouse` (the default) the wheels come from the host's cache and pip inside the
    build needs no network. Without it pip fetches from PyPI inside the build, with the host's
    certificate authorities as a BuildKit secret (never part of a layer).
    """
    started = time.monotonic()
    chosen = bases(cli)
    args = [
        "--build-arg", f"BASE_IMAGE={chosen.python}",
        "--build-arg", f"BUILD_IMAGE={chosen.python_build}",
    ]  # fmt: skip
    if wheelhouse:
        target = probe_target(cli, chosen.python_build)
        image = Wheelhouse(cli, context / "pyproject.toml", target).ensure()
        args += ["--build-arg", f"WHEELHOUSE={image}"]
    else:
        ca = Path(os.environ.get("SSL_CERT_FILE") or HOST_CA_BUNDLE)
        if ca.is_file():
            args += ["--secret", f"id=pip-ca,src={ca}"]
    args += ["--tag", tag, "--file", str(context / "Dockerfile"), str(context)]
    logger.info("building %s from %s (log %s)", tag, context / "Dockerfile", log_dir() / "app.log")
    previous = cli.image_id(tag)
    cli.build(args, log_path=log_dir() / "app.log")
    if previous and previous != cli.image_id(tag):
        # The tag moved on: drop the image it named, unless a container still uses it.
        cli.run(["image", "rm", previous], check=False)
    return BuiltImage(tag, cli.image_size(tag), time.monotonic() - started)


def kafka_image(cli: DockerCLI, version: str = KAFKA_VERSION) -> str:
    """The Kafka image's name, built (or reloaded from its tar) when the engine lacks it."""
    recipe = RECIPES / "kafka"
    debian = bases(cli).debian
    name = f"heartbeat-kafka:{version}-{recipe_digest(recipe, debian, version)}"

    def assemble(context: Path) -> None:
        _copy_recipe(recipe, context)
        libs = context / "libs"
        libs.mkdir()
        for jar in kafka_libs(version).glob("*.jar"):
            _link_or_copy(jar, libs / jar.name)

    return _ensure_service(cli, name, debian, assemble)


def postgres_image(cli: DockerCLI) -> str:
    """The PostgreSQL image's name, built (or reloaded from its tar) when the engine lacks it."""
    recipe = RECIPES / "postgres"
    debian = bases(cli).debian
    name = f"heartbeat-postgres:{POSTGRES_MAJOR}-{recipe_digest(recipe, debian)}"
    return _ensure_service(cli, name, debian, lambda context: _copy_recipe(recipe, context))


def _ensure_service(
    cli: DockerCLI, name: str, debian: str, assemble: Callable[[Path], None]
) -> str:
    cache = ImageCache(cli)
    if cache.restore(name):
        return name
    with exclusive(name):
        if not cache.restore(name):  # another run may have built it meanwhile
            _build_service(cli, cache, name, debian, assemble)
    return name


def _build_service(
    cli: DockerCLI, cache: ImageCache, name: str, debian: str, assemble: Callable[[Path], None]
) -> None:
    started = time.monotonic()
    log_path = log_dir() / (name.split(":")[0] + ".log")
    logger.info("building %s on %s (once; log %s)", name, debian, log_path)
    # Next to the cache, so the jars can be hard links rather than copies.
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="context-", dir=log_path.parent) as folder:
        context = Path(folder)
        assemble(context)
        cli.build(
            ["--build-arg", f"BASE_IMAGE={debian}", "--tag", name, str(context)],
            log_path=log_path,
        )
    logger.info("built %s in %.0f s", name, time.monotonic() - started)
    cache.store(name)


def _copy_recipe(recipe: Path, context: Path) -> None:
    for path in recipe.iterdir():
        if path.is_file():
            shutil.copy2(path, context / path.name)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
