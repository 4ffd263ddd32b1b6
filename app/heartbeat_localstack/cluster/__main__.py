"""``python -m heartbeat_localstack.cluster build|up|down|status``.

build                 build the binaries into the cache (once per set of versions)
up --dir .stack       start the control plane; writes .stack/kubeconfig and .stack/bin
down --dir .stack     stop it (nothing to do when it does not run)
status --dir .stack   say what runs; exit status 3 when nothing does
load --dir .stack     copy the local images into the running real node's containerd
dev --dir .stack      `make k8s-dev`: a real node, the local images, dev-deps and the chart

The binaries are cached in ``$HEARTBEAT_CACHE_DIR`` (default ``~/.cache/heartbeat``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from heartbeat_localstack.console import report_error
from heartbeat_localstack.exceptions import LocalStackError

from . import build


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m heartbeat_localstack.cluster",
        description="A local Kubernetes control plane (etcd, API server, controllers, "
        "scheduler, kwok fake nodes) built from source and run as background processes.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build", help="build the binaries into the cache")
    build_cmd.add_argument("--force", action="store_true", help="rebuild even when cached")
    build_cmd.add_argument(
        "--nodes", choices=("kwok", "real"), default="kwok", help="also build a real node's"
    )
    for name, text in (
        ("up", "start the cluster (builds first when needed)"),
        ("down", "stop the cluster"),
        ("status", "show what runs"),
        ("load", "copy heartbeat:dev, Kafka's and PostgreSQL's images into the real node"),
        ("dev", "a real node with the local images, dev-deps and the heartbeat chart"),
    ):
        cmd = commands.add_parser(name, help=text)
        cmd.add_argument("--dir", type=Path, default=Path(".stack"), help="state folder")
        if name == "dev":
            cmd.add_argument(
                "--charts", type=Path, default=Path("charts"), help="the charts folder"
            )
        if name == "up":
            cmd.add_argument(
                "--nodes",
                choices=("kwok", "real"),
                default="kwok",
                help="kwok fake nodes (default), or one real node that runs containers",
            )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "build":
            if args.nodes == "real":
                build.build_node(force=args.force)
            else:
                build.build(force=args.force)
            return 0
        from . import control_plane

        if args.command == "load":
            return _load(args.dir)
        if args.command == "dev":
            from . import dev

            build.build_node()
            build.build()
            lines = dev.run(args.dir, args.charts)
            print("the pipeline runs on the local cluster; to reach it:")
            print("\n".join(f"  {line}" for line in lines))
            return 0
        if args.command == "up":
            if args.nodes == "real":
                build.build_node()
            cluster = control_plane.up(args.dir, build.build(), nodes=args.nodes)
            print(f"cluster is up: export KUBECONFIG={cluster.kubeconfig}")
            print(f"kubectl and helm are in {cluster.bin_dir}")
            return 0
        if args.command == "down":
            control_plane.down(args.dir)
            return 0
        running = control_plane.status(args.dir)
        for component, pid in running.items():
            print(f"{component:<24} {'pid ' + str(pid) if pid else 'not running'}")
        server = control_plane.server(args.dir)
        if server and any(running.values()):
            print(f"API server {server}; kubeconfig {args.dir.resolve() / 'kubeconfig'}")
        return 0 if any(running.values()) else 3
    except LocalStackError as exc:
        return report_error(exc)


def _load(state_dir: Path) -> int:
    from heartbeat_localstack.docker import DockerCLI

    from . import control_plane, local_images, node
    from .build import node_binaries
    from .components import Layout

    if not node.runs(Layout(state_dir.resolve() / "cluster"), node_binaries()):
        print(f"no real node runs under {state_dir}; the images reach it when it starts")
        return 0
    images = local_images.ensure(DockerCLI())
    control_plane.load_images(state_dir, images.names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
