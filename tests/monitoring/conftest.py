"""Fixtures of the monitoring tests.

``monitored`` is a running pipeline under a real Prometheus, shared by the integration
tests of this folder: see ``tests/monitoring/world.py``. ``operated`` is a running operator
on the local control plane (``kube_cluster``, a fixture of tests/conftest.py's plugins) under
a real Prometheus: see ``tests/monitoring/operator_world.py``.
"""

from __future__ import annotations

from tests.monitoring.operator_world import operated  # noqa: F401 (a fixture)
from tests.monitoring.world import monitored  # noqa: F401 (a fixture)
