"""The generator StatefulSet a HeartbeatSimulation asks for, and how far reality is from it.

Pure functions: the StatefulSet is built from the spec and the operator's settings only,
so the same inputs always give the same manifest (and the same ``heartbeat.dev/spec-hash``
annotation), and ``drift`` compares it with what the API server holds.

Why a StatefulSet: its pods are named ``<name>-0 .. <name>-(n-1)``, and the producer reads
that ordinal from HOSTNAME to pick its slice of the customers (``customer_slice``); the
ordinals are stable, so a restarted pod simulates the same customers again, one workload
is all a simulation owns, and scaling is one field. Changing ``customers`` or ``replicas``
changes the pods' environment, so the StatefulSet rolls them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from heartbeat.settings import Settings
from heartbeat_operator.settings import OperatorSettings, quantity_amount
from heartbeat_operator.spec import SimulationSpec

Manifest = dict[str, Any]

CONTAINER = "generator"
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
APP_NAME = "heartbeat-simulation"
MANAGER = "heartbeat-operator"
SPEC_HASH = "heartbeat.dev/spec-hash"
RUN_AS = 10001

# The pipeline settings a generator needs to reach Kafka, copied from the operator's own
# environment. The SASL password is never copied: it is read from a Secret (secretKeyRef).
PASSED_THROUGH = (
    "kafka_bootstrap_servers",
    "kafka_security_protocol",
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_ssl_ca_location",
    "kafka_ssl_certificate_location",
    "kafka_ssl_key_location",
    "kafka_compression",
    "kafka_topic_partitions",
    "kafka_replication_factor",
    "retry_initial_seconds",
    "retry_max_seconds",
    "log_level",
    "log_format",
)


@dataclass(frozen=True)
class SimulationRef:
    """Which HeartbeatSimulation: enough to name and own its StatefulSet."""

    namespace: str
    name: str
    uid: str

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> SimulationRef:
        meta = body["metadata"]
        return cls(namespace=meta["namespace"], name=meta["name"], uid=meta["uid"])


@dataclass(frozen=True)
class GeneratorConfig:
    """What every generator pod shares, whatever the simulation."""

    image: str
    pull_policy: str = "IfNotPresent"
    service_account: str = ""
    cpu_request: str = "50m"
    memory_request: str = "96Mi"
    memory_limit: str = "256Mi"
    metrics_port: int = 8000
    default_topic: str = "heartbeats"
    env: tuple[tuple[str, str], ...] = ()
    sasl_secret: str = ""
    sasl_secret_key: str = "kafka-sasl-password"
    tls_secret: str = ""
    tls_mount_path: str = "/etc/heartbeat/kafka-tls"


def generator_config(settings: Settings, config: OperatorSettings) -> GeneratorConfig:
    """The shared part of the generators, from the operator's two settings objects."""
    values = settings.model_dump()
    env = tuple(
        (Settings.env_name(name), str(values[name]))
        for name in PASSED_THROUGH
        if values.get(name) is not None
    )
    return GeneratorConfig(
        image=config.generator_image,
        pull_policy=config.generator_image_pull_policy,
        service_account=config.generator_service_account,
        cpu_request=config.generator_cpu_request,
        memory_request=config.generator_memory_request,
        memory_limit=config.generator_memory_limit,
        metrics_port=config.generator_metrics_port,
        default_topic=settings.kafka_topic,
        env=env,
        sasl_secret=config.kafka_sasl_secret,
        sasl_secret_key=config.kafka_sasl_secret_key,
        tls_secret=config.kafka_tls_secret,
        tls_mount_path=config.kafka_tls_mount_path,
    )


def selector_labels(name: str) -> dict[str, str]:
    """Labels that pick a simulation's pods; stable for its whole life."""
    return {NAME_LABEL: APP_NAME, INSTANCE_LABEL: name}


def labels(name: str) -> dict[str, str]:
    return {
        **selector_labels(name),
        "app.kubernetes.io/component": CONTAINER,
        "app.kubernetes.io/part-of": "heartbeat",
        "app.kubernetes.io/managed-by": MANAGER,
    }


def selector_string(name: str) -> str:
    """The selector as ``kubectl -l`` and the scale subresource's ``status.selector`` want it."""
    return ",".join(f"{key}={value}" for key, value in sorted(selector_labels(name).items()))


def generator_env(spec: SimulationSpec, generator: GeneratorConfig) -> list[Manifest]:
    """Environment of a generator pod; the pod's ordinal (from HOSTNAME) picks its slice."""
    env: list[Manifest] = [{"name": name, "value": value} for name, value in generator.env]
    env += [
        {"name": "KAFKA_TOPIC", "value": spec.topic or generator.default_topic},
        {"name": "PRODUCER_CUSTOMERS", "value": str(spec.customers)},
        {"name": "PRODUCER_FIRST_CUSTOMER", "value": str(spec.first_customer)},
        {"name": "PRODUCER_SHARD_COUNT", "value": str(spec.shard_count)},
        {"name": "PRODUCER_RATE", "value": _number(spec.rate_per_replica)},
        {"name": "PRODUCER_ANOMALY_RATE", "value": _number(spec.anomaly_rate)},
        {"name": "METRICS_PORT", "value": str(generator.metrics_port)},
    ]
    if spec.seed is not None:
        env.append({"name": "PRODUCER_SEED", "value": str(spec.seed)})
    if generator.sasl_secret:
        env.append(
            {
                "name": "KAFKA_SASL_PASSWORD",
                "valueFrom": {
                    "secretKeyRef": {
                        "name": generator.sasl_secret,
                        "key": generator.sasl_secret_key,
                    }
                },
            }
        )
    return env


def _number(value: float) -> str:
    return f"{value:g}"


def _probe(path: str, initial_delay: int, period: int, failures: int) -> Manifest:
    """A probe as the chart's pods have it (a test compares them)."""
    return {
        "httpGet": {"path": path, "port": "metrics"},
        "initialDelaySeconds": initial_delay,
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def _pod_spec(spec: SimulationSpec, generator: GeneratorConfig) -> Manifest:
    mounts: list[Manifest] = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[Manifest] = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    if generator.tls_secret:
        mounts.append(
            {"name": "kafka-tls", "mountPath": generator.tls_mount_path, "readOnly": True}
        )
        volumes.append(
            {
                "name": "kafka-tls",
                "secret": {"secretName": generator.tls_secret, "defaultMode": 0o440},
            }
        )
    container: Manifest = {
        "name": CONTAINER,
        "image": generator.image,
        "imagePullPolicy": generator.pull_policy,
        "command": ["heartbeat"],
        "args": ["produce"],
        "env": generator_env(spec, generator),
        "ports": [{"name": "metrics", "containerPort": generator.metrics_port, "protocol": "TCP"}],
        "livenessProbe": _probe("/healthz", initial_delay=10, period=10, failures=6),
        "readinessProbe": _probe("/readyz", initial_delay=5, period=5, failures=3),
        "resources": {
            "requests": {"cpu": generator.cpu_request, "memory": generator.memory_request},
            "limits": {"memory": generator.memory_limit},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
    }
    pod: Manifest = {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    if generator.service_account:
        pod["serviceAccountName"] = generator.service_account
    return pod


def statefulset(sim: SimulationRef, spec: SimulationSpec, generator: GeneratorConfig) -> Manifest:
    """The StatefulSet ``sim`` owns, as the API server should hold it once adopted.

    The owner reference (``controller``, ``blockOwnerDeletion``: deleting the simulation
    deletes the StatefulSet and its pods) is kopf's, added by the reconciler, which holds
    the simulation's body.
    """
    body: Manifest = {
        "replicas": spec.effective_replicas,
        "serviceName": sim.name,
        "selector": {"matchLabels": selector_labels(sim.name)},
        # Every pod starts and stops at once: a generator does not wait for its neighbours.
        "podManagementPolicy": "Parallel",
        "updateStrategy": {"type": "RollingUpdate"},
        "revisionHistoryLimit": 3,
        "template": {
            "metadata": {"labels": labels(sim.name)},
            "spec": _pod_spec(spec, generator),
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": sim.name,
            "namespace": sim.namespace,
            "labels": labels(sim.name),
            "annotations": {SPEC_HASH: spec_hash(body)},
        },
        "spec": body,
    }


def spec_hash(body: Manifest) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def is_controlled_by(actual: Mapping[str, Any], sim: SimulationRef) -> bool:
    return any(
        ref.get("controller") and ref.get("uid") == sim.uid
        for ref in actual.get("metadata", {}).get("ownerReferences") or []
    )


def drift(desired: Manifest, actual: Mapping[str, Any]) -> list[str]:
    """Paths where ``actual`` differs from ``desired``; empty when nothing needs doing.

    Only what the operator sets is compared, so fields the API server fills in
    (defaults, status, managed fields) never count; lists must match in length, so an
    added environment variable or container does. Resource quantities are compared by
    amount, as the API server rewrites them in its own spelling.
    """
    found: list[str] = []
    meta, actual_meta = desired["metadata"], actual.get("metadata", {})
    for key in ("labels", "annotations", "ownerReferences"):
        if key in meta:
            _differences(meta[key], actual_meta.get(key), f"metadata.{key}", found)
    for key in ("replicas", "selector", "template"):
        _differences(desired["spec"][key], actual.get("spec", {}).get(key), f"spec.{key}", found)
    return found


def changed_spec(desired: Manifest, actual: Mapping[str, Any]) -> bool:
    """True when the StatefulSet was written for another spec (or other settings).

    Tells an update the operator makes on purpose from the repair of someone's edit.
    """
    annotations = actual.get("metadata", {}).get("annotations") or {}
    return bool(annotations.get(SPEC_HASH) != desired["metadata"]["annotations"][SPEC_HASH])


def _differences(want: Any, have: Any, path: str, found: list[str]) -> None:
    if isinstance(want, Mapping):
        if not isinstance(have, Mapping):
            found.append(path)
            return
        for key, value in want.items():
            _differences(value, have.get(key), f"{path}.{key}", found)
    elif isinstance(want, list):
        if not isinstance(have, list) or len(have) != len(want):
            found.append(path)
            return
        for index, (w, h) in enumerate(zip(want, have, strict=True)):
            _differences(w, h, f"{path}[{index}]", found)
    elif want != have and not _same_quantity(want, have, path):
        found.append(path)


def _same_quantity(want: Any, have: Any, path: str) -> bool:
    """Resource amounts come back in the API server's spelling (0.1 as 100m, 1024Mi as 1Gi)."""
    if ".resources." not in path and not path.endswith(".sizeLimit"):
        return False
    try:
        return quantity_amount(str(want)) == quantity_amount(str(have))
    except ValueError:
        return False
