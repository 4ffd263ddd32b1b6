"""Start the operator: ``heartbeat operator`` calls ``run``; ``python -m heartbeat_operator``
runs ``main``, which reads the pipeline's settings and sets up logging first.

kopf runs standalone (one operator at a time, no peering objects; the chart's Deployment
has one replica and the Recreate strategy), against the in-cluster ServiceAccount or else
the current context of KUBECONFIG, for the namespaces in OPERATOR_NAMESPACES or, when that
is empty, for all of them. The app's own server on METRICS_PORT serves ``/metrics``,
``/healthz`` (the event loop turns) and ``/readyz`` (the last resync reached the API).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Sequence

import kopf

from heartbeat import __version__, logs
from heartbeat.errors import HeartbeatError, SettingsError
from heartbeat.metrics import new_registry
from heartbeat.server import Health, MetricsServer
from heartbeat.settings import Settings, load_settings
from heartbeat_operator.events import KopfEvents
from heartbeat_operator.exceptions import KubeError, OperatorSettingsError
from heartbeat_operator.handlers import Runtime
from heartbeat_operator.kube import Kube
from heartbeat_operator.manifests import MANAGER, generator_config
from heartbeat_operator.metrics import OperatorMetrics
from heartbeat_operator.reconcile import Reconciler
from heartbeat_operator.settings import OperatorSettings, load_operator_settings
from heartbeat_operator.spec import GROUP

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def kopf_settings(config: OperatorSettings) -> kopf.OperatorSettings:
    """kopf's knobs, set for this operator."""
    settings = kopf.OperatorSettings()
    # Only warnings and errors about a simulation become its Events; the operator posts
    # its own actions (Created, Updated, DriftRepaired...) whatever the level.
    settings.posting.level = config.posting_level_number
    # Who posts the Events (`kubectl describe` shows it as "From").
    settings.posting.reporting_component = MANAGER
    settings.posting.reporting_instance = os.environ.get("POD_NAME") or socket.gethostname()
    # The CRD is installed before the operator and the namespaces are named: no need to
    # list or watch CRDs and namespaces, so no RBAC for them.
    settings.scanning.disabled = True
    # kopf's bookkeeping lives in annotations under our own group, never in the status,
    # which only the operator's reconciliation writes.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    # Reconnect watches every few minutes even when the network silently drops them.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.execution.max_workers = 4
    return settings


def check_combinations(settings: Settings, config: OperatorSettings) -> None:
    if settings.kafka_security_protocol.startswith("SASL_") and not config.kafka_sasl_secret:
        raise OperatorSettingsError(
            "invalid operator settings:\n  OPERATOR_KAFKA_SASL_SECRET: required with "
            f"KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol}, so that the "
            "generators can read the password from it"
        )


def run(settings: Settings, namespaces: Sequence[str] | None = None) -> int:
    """Run until SIGTERM or SIGINT. ``namespaces`` overrides OPERATOR_NAMESPACES."""
    try:
        config = load_operator_settings(namespaces=",".join(namespaces) if namespaces else None)
        check_combinations(settings, config)
    except OperatorSettingsError as exc:
        print(f"heartbeat: {exc}", file=sys.stderr)
        return EXIT_USAGE
    registry = new_registry()
    health = Health(("kubernetes",), settings.liveness_timeout_seconds)
    metrics = OperatorMetrics(registry)
    # The port first: a busy one (MetricsPortUnavailable) leaves nothing open behind it.
    port = settings.metrics_port_for("operator")
    server = MetricsServer(settings.metrics_host, port, registry, health).start()
    try:
        kube = Kube.connect()
    except KubeError as exc:
        server.stop()
        logger.error("cannot reach Kubernetes: %s", exc)
        return EXIT_FAILED

    events = KopfEvents()
    reconciler = Reconciler(
        kube, generator_config(settings, config), metrics, config.namespace_list, events=events
    )
    runtime = Runtime(kube, reconciler, health, config.resync_interval_seconds, events)
    scope = ", ".join(config.namespace_list) or "all namespaces"
    logger.info("heartbeat operator %s starting; serving %s", __version__, scope)
    if settings.log_level != "DEBUG":
        # kopf logs every handler call at INFO; the reconciler logs what it does.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    try:
        kopf.run(
            settings=kopf_settings(config),
            standalone=True,
            clusterwide=not config.namespace_list,
            namespaces=config.namespace_list,
            memo=kopf.Memo(runtime=runtime),
        )
    except Exception as exc:  # e.g. the startup check failed: one line, exit non-zero
        logger.error("the operator stopped: %s: %s", type(exc).__name__, exc)
        logger.debug("where it happened", exc_info=True)
        return EXIT_FAILED
    finally:
        server.stop()
        kube.close()
    return EXIT_OK


def main() -> int:
    """``python -m heartbeat_operator [NAMESPACE]...``: settings and logging, then ``run``."""
    try:
        settings = load_settings()
        logs.configure(settings)
    except SettingsError as exc:
        print(f"heartbeat: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return run(settings, namespaces=sys.argv[1:] or None)
    except HeartbeatError as exc:  # e.g. METRICS_PORT is busy: one line, as heartbeat's own
        logger.error("the operator cannot start: %s", exc)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
