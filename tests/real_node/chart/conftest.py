"""One install of charts/dev-deps and charts/heartbeat on the real node per test module.

The cluster is `real_cluster` of tests/real_node/conftest.py (skipped, with the reason, where
no real node can start). PostgreSQL keeps its data in a folder of the host (the node is this
machine), so scaling it to 0 and back loses nothing, as a volume would.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from heartbeat_localstack.cluster.build import node_binaries
from heartbeat_localstack.cluster.components import Layout
from heartbeat_localstack.cluster.node import node_layout
from tests.support.kube import CommandError

from ..conftest import RealCluster
from .release import Release

logger = logging.getLogger(__name__)

NAMESPACE = "pipeline-e2e"


def dev_deps_values(cluster: RealCluster, data_dir: Path) -> dict[str, Any]:
    values = cluster.dev_deps_values()
    values["postgresql"]["dataHostPath"] = str(data_dir)
    return values


def crictl(cluster: RealCluster) -> list[str]:
    """crictl against the node's containerd: what runs on the node, whatever the API says."""
    target = node_binaries()
    layout = node_layout(Layout(cluster.cluster.state_dir / "cluster"), target.containerd_root)
    return [str(target.path("crictl")), f"--runtime-endpoint=unix://{layout.socket}"]


@pytest.fixture(scope="module")
def release(
    real_cluster: RealCluster,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Release]:
    started = time.monotonic()
    work = tmp_path_factory.mktemp("chart-e2e")
    data = work / "postgresql-data"
    data.mkdir(mode=0o700)
    owner = real_cluster.images.postgres_user
    os.chown(data, owner.uid, owner.gid)  # initdb, as the image's user, makes PGDATA inside
    kube = real_cluster.kubectl(NAMESPACE)
    kube.run("create", "namespace", NAMESPACE)
    installed = Release(
        kube,
        real_cluster.images.app,
        work,
        dev_deps_values(real_cluster, data),
        crictl(real_cluster),
    )
    try:
        try:
            installed.install()
        except CommandError as exc:
            pytest.fail(f"{exc}\n{kube.diagnostics()}")
        yield installed
    finally:
        if installed.installed:
            try:
                installed.uninstall()
            except CommandError as exc:
                logger.warning("uninstall failed: %s", exc)
        kube.run("delete", "namespace", NAMESPACE, "--timeout=180s", check=False, timeout=240)
        shutil.rmtree(data, ignore_errors=True)
        timings = ", ".join(f"{k} {v:.0f} s" for k, v in installed.timings.items())
        line = f"chart end-to-end on the real node: {time.monotonic() - started:.0f} s ({timings})"
        logger.info(line)
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)
