"""The local cluster with one real node, shared by every test under tests/real_node.

Runs only where a real node can start: as root, with containerd, the CNI plugins, a Docker
engine holding heartbeat:dev, and the node binaries built (`make cluster-build NODES=real`).
Elsewhere every test that asks for `real_cluster` is skipped, with the reason.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from heartbeat_localstack.cluster import control_plane, local_images
from heartbeat_localstack.cluster.build import binaries, node_binaries
from heartbeat_localstack.cluster.control_plane import Cluster
from heartbeat_localstack.cluster.exceptions import NodeBusyError
from heartbeat_localstack.cluster.local_images import LocalImages
from heartbeat_localstack.docker import DockerCLI
from tests.support.kube import Kubectl

if TYPE_CHECKING:
    from .pipeline import Pipeline

IMAGE = os.environ.get("HEARTBEAT_TEST_IMAGE", "heartbeat:dev")
#: How long to wait for another cluster's real node (one per machine) to be stopped.
BUSY_WAIT_SECONDS = 1800.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RealCluster:
    """A running cluster with a real node, and the images its containerd holds
    (`dev_deps_values()` runs charts/dev-deps on them)."""

    cluster: Cluster
    images: LocalImages

    def kubectl(self, namespace: str = "") -> Kubectl:
        """The cluster's kubectl and helm, in `namespace` when given one."""
        return Kubectl(self.cluster, namespace)

    def dev_deps_values(self) -> dict[str, Any]:
        """charts/dev-deps values for the local Kafka and PostgreSQL images on the node."""
        return local_images.dev_deps_values(self.images)

    def heartbeat_image_values(self) -> dict[str, Any]:
        """charts/heartbeat `image` values for the project's image on the node."""
        return local_images.heartbeat_image_values(self.images)


def why_no_real_node() -> str | None:
    """Why a real node cannot start here, or None when it can."""
    if os.geteuid() != 0:
        return "a real node needs root"
    if shutil.which("containerd") is None or not Path("/usr/lib/cni/bridge").exists():
        return "containerd or the CNI plugins are not installed"
    if not (binaries().is_built() and node_binaries().is_built()):
        return "the node binaries are not built (make cluster-build NODES=real)"
    if DockerCLI().server_version() is None or DockerCLI().image_id(IMAGE) is None:
        return f"no Docker engine with {IMAGE} (make image)"
    return None


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    """One cluster with a real node for the whole session, stopped (and cleaned) at the end."""
    reason = why_no_real_node()
    if reason:
        pytest.skip(reason)
    images = local_images.ensure(DockerCLI(), IMAGE)
    state = tmp_path_factory.mktemp("real-node")
    cluster = _start(state, images)
    try:
        yield RealCluster(cluster, images)
    finally:
        control_plane.down(state)


def _start(state: Path, images: LocalImages) -> Cluster:
    """Start the cluster, waiting while another one holds the machine's real node."""
    deadline = time.monotonic() + BUSY_WAIT_SECONDS
    while True:
        try:
            return control_plane.up(state, nodes="real", progress=logger.info, images=images.names)
        except NodeBusyError as exc:
            if time.monotonic() > deadline:
                raise
            logger.warning("%s; waiting", exc)
            time.sleep(15)


@pytest.fixture(scope="session")
def pipeline(
    real_cluster: RealCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    """charts/dev-deps and charts/heartbeat (operator, one consumer, a small producer) on the
    real node, shared by the tests of the operator's pods and of Prometheus scraping them."""
    from .pipeline import installed

    with installed(real_cluster, tmp_path_factory.mktemp("pipeline")) as running:
        yield running
