"""Images kept outside the engine as ``docker save`` tars, so a new engine reloads them in seconds.

A tar lives in ``<cache root>/images/<name>.tar`` (the cache root of
`heartbeat_localstack.maven`, ``~/.cache/heartbeat`` by default). The image name carries its
version, so a new version is a new tar and an old tar is never reused by mistake. A tar is
written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

from heartbeat_localstack.docker import DockerCLI
from heartbeat_localstack.maven import cache_root

logger = logging.getLogger(__name__)


def tar_path(image: str) -> Path:
    """Where `image`'s tar is kept: ``heartbeat-base/debian:bookworm-1`` is
    ``<cache root>/images/heartbeat-base_debian_bookworm-1.tar``."""
    return cache_root() / "images" / (re.sub(r"[/:@]", "_", image) + ".tar")


@contextlib.contextmanager
def exclusive(what: str) -> Iterator[None]:
    """Hold a lock named `what` in the cache, so two runs never build the same thing at once."""
    path = cache_root() / "images" / f".{re.sub(r'[/:@]', '_', what)}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


class ImageCache:
    """Restore an image into the engine from its tar, or keep a tar of a new one."""

    def __init__(self, cli: DockerCLI) -> None:
        self.cli = cli

    def restore(self, image: str) -> bool:
        """True when the engine has `image`, loading its tar first if needed; False otherwise."""
        if self.cli.image_id(image) is not None:
            return True
        tar = tar_path(image)
        if not tar.exists():
            return False
        started = time.monotonic()
        self.cli.run(["load", "--quiet", "--input", str(tar)], timeout=600)
        if self.cli.image_id(image) is None:  # a tar of another image under this name
            logger.warning("%s did not hold %s; it will be rebuilt", tar, image)
            tar.unlink(missing_ok=True)
            return False
        logger.info("loaded %s from %s in %.1f s", image, tar, time.monotonic() - started)
        return True

    def store(self, image: str) -> Path:
        """Save `image` to its tar (replacing an older one); returns the tar's path."""
        tar = tar_path(image)
        tar.parent.mkdir(parents=True, exist_ok=True)
        partial = tar.with_suffix(".tar.partial")
        self.cli.run(["save", "--output", str(partial), image], timeout=600)
        partial.rename(tar)
        logger.info("saved %s to %s (%.0f MB)", image, tar, tar.stat().st_size / 1e6)
        return tar
