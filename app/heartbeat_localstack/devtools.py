"""Developer tools built from their Go modules, once per version: skaffold and kind.

``python -m heartbeat_localstack.devtools build skaffold|kind`` builds one with the cluster's
Go build machinery (the same logs, priority and Go caches) into
``<cache>/tools/<tool>-<version>/bin`` and prints the binary's path; a cached build is reused.
``path skaffold|kind`` prints the path of a built one, or exits 3. A module the Go module
proxy refuses is reported as such (exit 1), with the proxy's answer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from heartbeat_localstack.cluster.build import Binaries, Builder, Progress, _exclusive
from heartbeat_localstack.cluster.exceptions import BuildError
from heartbeat_localstack.cluster.versions import PINNED, cache_root
from heartbeat_localstack.console import report_error
from heartbeat_localstack.exceptions import LocalStackError

MARKER = "built.json"


@dataclass(frozen=True)
class Tool:
    """A command built with ``go install <package>@v<version>``."""

    name: str
    package: str
    version: str
    ldflags: str = "-s -w"


TOOLS = {
    tool.name: tool
    for tool in (
        Tool(
            "skaffold",
            "github.com/GoogleContainerTools/skaffold/v2/cmd/skaffold",
            "2.25.0",
            "-s -w -X github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version.version="
            "v2.25.0",
        ),
        Tool("kind", "sigs.k8s.io/kind", "0.33.0"),
    )
}


@dataclass(frozen=True)
class BuiltTool:
    tool: Tool
    root: Path

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def path(self) -> Path:
        return self.bin_dir / self.tool.name

    @property
    def marker(self) -> Path:
        return self.root / MARKER

    def is_built(self) -> bool:
        try:
            recorded = json.loads(self.marker.read_text())
        except (OSError, ValueError):
            return False
        return recorded.get("version") == self.tool.version and os.access(self.path, os.X_OK)


def located(tool: Tool, cache: Path | None = None) -> BuiltTool:
    return BuiltTool(tool, (cache or cache_root()) / "tools" / f"{tool.name}-{tool.version}")


def build(tool: Tool, cache: Path | None = None, progress: Progress = print) -> BuiltTool:
    """Build `tool` unless the cache holds it; returns where it is."""
    target = located(tool, cache)
    with _exclusive(target.root / ".lock"):
        if target.is_built():
            progress(f"{tool.name} {tool.version} is cached: {target.path}")
            return target
        target.marker.unlink(missing_ok=True)
        target.bin_dir.mkdir(parents=True, exist_ok=True)
        # The Builder's Go runner: its logs go to <root>/logs, its sources to <root>/src.
        builder = Builder(Binaries(PINNED, target.root), progress)
        builder.logs.mkdir(parents=True, exist_ok=True)
        builder.src.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        builder._go(
            tool.name,
            [
                "install",
                "-trimpath",
                "-ldflags",
                tool.ldflags,
                f"{tool.package}@v{tool.version}",
            ],
            cwd=builder.src,
            env={"GOBIN": str(target.bin_dir)},
        )
        seconds = round(time.monotonic() - started, 1)
        marker = {"version": tool.version, "package": tool.package, "seconds": seconds}
        target.marker.write_text(json.dumps(marker, indent=2) + "\n")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m heartbeat_localstack.devtools",
        description="Build skaffold or kind from its Go module into the cache.",
    )
    parser.add_argument("command", choices=("build", "path"))
    parser.add_argument("tool", choices=sorted(TOOLS))
    args = parser.parse_args(argv)
    tool = TOOLS[args.tool]
    if args.command == "path":
        target = located(tool)
        if not target.is_built():
            print(f"{tool.name} {tool.version} is not built (make {tool.name})", file=sys.stderr)
            return 3
        print(target.path)
        return 0
    try:
        target = build(tool, progress=lambda line: print(line, file=sys.stderr))
    except BuildError as exc:
        return report_error(exc, f"cannot build {tool.name} {tool.version}: {exc}")
    except LocalStackError as exc:
        return report_error(exc)
    print(target.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
