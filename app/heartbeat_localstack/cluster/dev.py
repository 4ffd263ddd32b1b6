"""``make k8s-dev``: the pipeline on the local cluster's real node, from the local images.

Starts the cluster with a real node (or finds it running), copies the project's, Kafka's and
PostgreSQL's images into the node's containerd, installs charts/dev-deps and charts/heartbeat
into the ``heartbeat`` namespace with ``helm upgrade --install --wait`` (so a second run
upgrades), and says how to reach the metrics and the database.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from heartbeat_localstack.docker import DockerCLI

from . import control_plane, local_images
from .exceptions import ClusterError

NAMESPACE = "heartbeat"
DEPS_RELEASE = "dev-deps"
RELEASE = "heartbeat"
HELM_TIMEOUT = "10m"
Progress = Callable[[str], None]

# charts/dev-deps' PostgreSQL, which the pipeline is pointed at.
DATABASE = {"host": "postgresql", "database": "heartbeat", "username": "heartbeat"}
DATABASE_PASSWORD = "heartbeat"


def heartbeat_values(images: local_images.LocalImages) -> dict[str, Any]:
    """charts/heartbeat values: the local image, the dev Kafka and PostgreSQL, a gentle rate."""
    return {
        **local_images.heartbeat_image_values(images),
        "kafka": {"bootstrapServers": "kafka:9092"},
        "postgresql": {**DATABASE, "password": DATABASE_PASSWORD, "sslMode": "disable"},
        "config": {"logFormat": "text"},
        "producer": {"rate": 50},
    }


def reach(namespace: str, kubeconfig: Path, kubectl: Path) -> list[str]:
    """The lines that tell a developer how to reach the metrics and the database."""
    k = f"{kubectl} --kubeconfig={kubeconfig} -n {namespace}"
    return [
        f"export KUBECONFIG={kubeconfig}  # kubectl and helm: {kubectl.parent}",
        f"{k} get pods",
        f"{k} port-forward service/{RELEASE}-producer 8001:8000   # http://127.0.0.1:8001/metrics",
        f"{k} port-forward service/{RELEASE}-consumer 8002:8000   # http://127.0.0.1:8002/metrics",
        f"{k} port-forward service/{RELEASE}-operator 8003:8000   # http://127.0.0.1:8003/metrics",
        f"{k} port-forward service/postgresql 15432:5432",
        f"  then: PGPASSWORD={DATABASE_PASSWORD} psql -h 127.0.0.1 -p 15432 "
        f"-U {DATABASE['username']} {DATABASE['database']} -c 'select count(*) from heartbeats'",
        f"{k} exec deploy/postgresql -- psql -U {DATABASE['username']} {DATABASE['database']}",
    ]


def run(state_dir: Path, charts: Path, progress: Progress = print) -> list[str]:
    """Bring everything up; returns the lines to print."""
    images = local_images.ensure(DockerCLI())
    cluster = control_plane.up(state_dir, nodes="real", images=images.names, progress=progress)
    helm = [str(cluster.helm), f"--kubeconfig={cluster.kubeconfig}", "--namespace", NAMESPACE]
    with tempfile.TemporaryDirectory(prefix="k8s-dev-") as folder:
        for release, chart, values in (
            (DEPS_RELEASE, charts / "dev-deps", local_images.dev_deps_values(images)),
            (RELEASE, charts / "heartbeat", heartbeat_values(images)),
        ):
            progress(f"helm upgrade --install {release} {chart} --wait (in namespace {NAMESPACE})")
            _helm(helm, release, chart, values, Path(folder))
    return reach(NAMESPACE, cluster.kubeconfig, cluster.kubectl)


def _helm(
    helm: Sequence[str], release: str, chart: Path, values: Mapping[str, Any], folder: Path
) -> None:
    values_file = folder / f"{release}-values.json"
    values_file.write_text(json.dumps(values, indent=2))
    argv = [
        *helm,
        "upgrade",
        "--install",
        release,
        str(chart),
        "--create-namespace",
        "--wait",
        "--timeout",
        HELM_TIMEOUT,
        "--values",
        str(values_file),
    ]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ClusterError(f"helm upgrade --install {release} failed: {result.stderr.strip()}")
