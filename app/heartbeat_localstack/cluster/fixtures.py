"""pytest fixtures for the local control plane; load with ``pytest_plugins``.

    pytest_plugins = ["heartbeat_localstack.cluster.fixtures"]

    def test_something(kube_cluster):
        subprocess.run([kube_cluster.kubectl, "--kubeconfig", kube_cluster.kubeconfig, ...])

The binaries take tens of minutes to build the first time, so a test session does not build
them unasked: without them the tests are skipped, unless ``HEARTBEAT_BUILD_CLUSTER=1``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from . import build, control_plane
from .control_plane import Cluster

logger = logging.getLogger(__name__)

BUILD_SWITCH = "HEARTBEAT_BUILD_CLUSTER"


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A running cluster for the whole session, in a temporary folder, stopped at the end."""
    target = build.binaries()
    if not target.is_built():
        if os.environ.get(BUILD_SWITCH) != "1":
            pytest.skip(
                f"the Kubernetes binaries are not built in {target.bin_dir}; run "
                f"`python -m heartbeat_localstack.cluster build` or set {BUILD_SWITCH}=1 "
                "(the first build takes tens of minutes)"
            )
        target = build.build(progress=logger.info)
    state_dir = tmp_path_factory.mktemp("kube-cluster")
    cluster = control_plane.up(state_dir, target, progress=logger.info)
    try:
        yield cluster
    finally:
        control_plane.down(state_dir, progress=logger.info)
