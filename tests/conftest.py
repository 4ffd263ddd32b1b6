"""Shared fixtures. Integration fixtures (real Kafka and PostgreSQL) live in tests/services.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

# The services of the integration tests, and the local control plane as `kube_cluster`
# (started, or built with HEARTBEAT_BUILD_CLUSTER=1, by the first test that needs it).
pytest_plugins = ["tests.services", "heartbeat_localstack.cluster.fixtures"]


@pytest.fixture
def logging_as_it_was() -> Iterator[None]:
    """Root logging put back after the test, for tests that run `heartbeat.cli.main`.

    `main` sets logging up for a process: it replaces the root handlers (pytest's among them)
    with its own, on the stderr of the moment, which capsys closes after the test.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
