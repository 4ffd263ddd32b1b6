"""The Grafana dashboards of the pipeline, built with the Grafana Foundation SDK.

``DASHBOARDS`` maps each file name under ``grafana/dashboards/`` to the function that
builds it; ``heartbeat_dashboards.build`` (``python grafana/build_dashboards.py``) writes
them. Not shipped: the package is development tooling, like ``heartbeat_localstack``.
"""

from __future__ import annotations

from collections.abc import Callable

from grafana_foundation_sdk.builders.dashboard import Dashboard

from heartbeat_dashboards import heart_rates, operator, pipeline

DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "heartbeat-pipeline.json": pipeline.build,
    "heartbeat-heart-rates.json": heart_rates.build,
    "heartbeat-operator.json": operator.build,
}
