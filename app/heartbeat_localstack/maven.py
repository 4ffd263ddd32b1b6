"""The Kafka broker's jars, fetched from Maven Central once per version and cached.

The cache lives outside the repository so every checkout and test run shares it:
``${HEARTBEAT_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/heartbeat}/kafka-<version>/libs``.
A marker file is written only after a complete download, so an interrupted one is redone.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from heartbeat_localstack.exceptions import DownloadError, MissingToolError

logger = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"
# Kafka declares log4j2 compile-only; the broker needs a binding at run time. Kafka still
# logs through slf4j 1.x, hence the slf4j-1 binding (log4j-slf4j-impl, not -slf4j2-impl).
LOG4J_VERSION = "2.24.3"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
COMPLETE_MARKER = ".complete"

POM_TEMPLATE = """\
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>heartbeat.heartbeat_localstack</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>{kafka}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-api</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


def cache_root() -> Path:
    """Where downloaded tools are kept, shared by every checkout of the project."""
    explicit = os.environ.get("HEARTBEAT_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "heartbeat"


def kafka_libs(version: str = KAFKA_VERSION) -> Path:
    """The folder holding every jar the broker needs, downloading it the first time."""
    home = cache_root() / f"kafka-{version}"
    libs = home / "libs"
    if (home / COMPLETE_MARKER).exists():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    # A lock, so two test runs starting at once do not download into the same folder.
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / COMPLETE_MARKER).exists():
            _download(home, libs, version)
    return libs


def _download(home: Path, libs: Path, version: str) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MissingToolError(
            "Maven (mvn) is needed to fetch the Kafka jars; run make system-deps"
        )
    pom = home / "pom.xml"
    pom.write_text(POM_TEMPLATE.format(kafka=version, log4j=LOG4J_VERSION))
    partial = home / "libs.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(libs, ignore_errors=True)
    logger.info("fetching Kafka %s jars from Maven Central into %s", version, libs)
    started = time.monotonic()
    command = [
        mvn,
        "--batch-mode",
        "--file",
        str(pom),
        f"{DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={partial}",
    ]
    returncode, output = _run_showing_downloads(command, home)
    if returncode != 0:
        raise DownloadError(
            f"mvn could not fetch Kafka {version} (exit {returncode}):\n" + "\n".join(output[-20:])
        )
    partial.rename(libs)
    (home / COMPLETE_MARKER).write_text(f"kafka {version}, log4j {LOG4J_VERSION}\n")
    count = len(list(libs.glob("*.jar")))
    logger.info("fetched %d jars in %.0f s", count, time.monotonic() - started)


def _run_showing_downloads(command: list[str], cwd: Path) -> tuple[int, list[str]]:
    """Run Maven, logging each file it has fetched, with its size and speed.

    Maven's other output is kept, for the error message should it fail.
    """
    output: list[str] = []
    with subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    ) as mvn:
        assert mvn.stdout is not None
        for line in mvn.stdout:
            line = line.rstrip()
            output.append(line)
            # "[INFO] Downloaded from central: https://.../name-1.0.jar (310 kB at 122 kB/s)"
            if "Downloaded from" in line and "https://" in line:
                url, _, size = line.split("https://", 1)[1].partition(" ")
                logger.info("maven: fetched %s %s", url.rsplit("/", 1)[-1], size)
    return mvn.returncode, output
