"""Every workload keeps its security context and probes once the API server admitted it.

Admission plugins and defaulting may change what a manifest asked for; these tests read the
live objects back: the Deployments, the pods their ReplicaSets created, and the migration
hook Job as the watch saw it (Helm deletes it once it succeeded). The `helm test` pod is
checked in test_release.py, where it runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chart.helm import RELEASE
from tests.chart.manifests import ident
from tests.support.kube import ON_THE_CLUSTER

from .kube import INSTANCE, Kube, events_of
from .lockdown import probe_problems, security_problems

pytestmark = [*ON_THE_CLUSTER, pytest.mark.chart]

MIGRATIONS = f"{RELEASE}-migrations"
LONG_RUNNING = f"{INSTANCE},app.kubernetes.io/component in (producer,consumer,operator)"


def test_every_workload_runs_locked_down_and_probed_as_the_api_server_admitted_it(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    collection = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    with kube.watch(collection, tmp_path / "jobs.watch") as watch:
        kube.install(namespace)
        events = watch.wait_for(lambda seen: bool(events_of(seen, MIGRATIONS, "ADDED")))
    job = events_of(events, MIGRATIONS, "ADDED")[0]["object"]
    deployments = kube.items("deployments", "-n", namespace, "-l", INSTANCE)
    pods = kube.items("pods", "-n", namespace, "-l", LONG_RUNNING)
    assert len(deployments) == 3
    assert len(pods) == sum(d["spec"]["replicas"] for d in deployments)

    problems = security_problems(ident(job), job["spec"]["template"]["spec"])
    for deployment in deployments:
        spec = deployment["spec"]["template"]["spec"]
        problems += security_problems(ident(deployment), spec)
        problems += probe_problems(ident(deployment), spec)
    for pod in pods:
        where = f"Pod/{pod['metadata']['name']}"
        problems += security_problems(where, pod["spec"]) + probe_problems(where, pod["spec"])
    assert not problems, "\n".join(problems)
