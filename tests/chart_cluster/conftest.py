"""Fixtures of the chart's tests on the local control plane.

The cluster itself is ``kube_cluster`` from ``heartbeat_localstack.cluster.fixtures``
(loaded by tests/conftest.py): one cluster for the whole session, shared with every other
test on it. Each test gets a namespace of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from heartbeat_localstack.cluster.control_plane import Cluster
from tests.support.kube import new_namespace

from .kube import Kube

# Minimal CRDs of the kinds the chart renders for prometheus-operator and KEDA, neither of
# which runs here (see the comment in each file).
THIRD_PARTY_CRDS = sorted((Path(__file__).parent / "crds").glob("*.yaml"))


@pytest.fixture(scope="session")
def kube(kube_cluster: Cluster) -> Kube:
    return Kube(kube_cluster)


@pytest.fixture(scope="session")
def third_party_crds(kube: Kube) -> None:
    kube.apply_crds(yaml.safe_load(path.read_text()) for path in THIRD_PARTY_CRDS)


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    name = new_namespace(kube, "chart")
    yield name
    kube.run("delete", "namespace", name, "--wait=false")
