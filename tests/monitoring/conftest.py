"""Fixtures of the monitoring tests.

``grafana_builder`` is ``grafana/build_dashboards.py`` (its folder is put on sys.path, as
running it as a script does). ``monitored`` is a running pipeline under a real Prometheus,
shared by the integration tests of this folder: see ``tests/monitoring/world.py``.
``operated`` is a running operator on the local control plane under a real Prometheus: see
``tests/monitoring/operator_world.py``; a module using it loads the control plane's fixtures
(``pytest_plugins = ["heartbeat_localstack.cluster.fixtures"]``).
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import pytest

from tests.monitoring.operator_world import operated  # noqa: F401 (a fixture)
from tests.monitoring.queries import GRAFANA
from tests.monitoring.world import monitored  # noqa: F401 (a fixture)


@pytest.fixture(scope="session")
def grafana_builder() -> ModuleType:
    if str(GRAFANA) not in sys.path:
        sys.path.insert(0, str(GRAFANA))
    return importlib.import_module("build_dashboards")
