"""helm install, upgrade, test and uninstall of the chart on the local control plane.

kwok plays the kubelet on fake nodes: it marks scheduled pods Running and Ready at once, and
its default ``pod-complete`` stage turns pods owned by a Job into Succeeded, so the migration
hook Job really runs to completion here (its container does not: no image is pulled).
Pods owned by nothing, like the ``helm test`` pod, stay Running; the test of ``helm test``
reports their exit as a kubelet would.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.chart.helm import CHART, RELEASE
from tests.chart.manifests import container, env_of, ident
from tests.support.kube import ON_THE_CLUSTER, Object, condition, is_ready
from tests.support.polling import wait_for

from .kube import (
    INSTANCE,
    WAIT,
    Kube,
    events_of,
    timestamp,
)
from .lockdown import security_problems

pytestmark = [*ON_THE_CLUSTER, pytest.mark.chart]

MIGRATIONS = f"{RELEASE}-migrations"
COMPONENTS = ("producer", "consumer", "operator")
HOOK_ANNOTATIONS = {
    "helm.sh/hook": "pre-install,pre-upgrade",
    "helm.sh/hook-weight": "0",
    "helm.sh/hook-delete-policy": "before-hook-creation,hook-succeeded",
}
# What Kubernetes puts into every namespace, and the record of what happened (Events).
NAMESPACE_DEFAULTS = {"ServiceAccount/default", "ConfigMap/kube-root-ca.crt"}
HISTORY_KINDS = {"events", "events.events.k8s.io"}


def jobs(namespace: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs"


def migrations_finished(events: list[Object]) -> bool:
    """Helm deleted the migration Job, which it does once the Job succeeded."""
    return bool(events_of(events, MIGRATIONS, "DELETED"))


def deployments(kube: Kube, namespace: str) -> dict[str, Object]:
    return {d["metadata"]["name"]: d for d in kube.items("deployments", "-n", namespace)}


def pods_of(kube: Kube, namespace: str, deployment: Object) -> list[Object]:
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = ",".join(f"{key}={value}" for key, value in selector.items())
    return kube.items("pods", "-n", namespace, "-l", labels)


def template_hash(kube: Kube, namespace: str, deployment: Object) -> str:
    """The pod-template-hash of the one ReplicaSet of `deployment` that has pods."""
    uid = deployment["metadata"]["uid"]
    live = [
        rs
        for rs in kube.items("replicasets", "-n", namespace)
        if any(o["uid"] == uid for o in rs["metadata"].get("ownerReferences", []))
        and rs["spec"]["replicas"] > 0
    ]
    assert len(live) == 1, [rs["metadata"]["name"] for rs in live]
    return str(live[0]["metadata"]["labels"]["pod-template-hash"])


def pods_after_rollout(
    kube: Kube, namespace: str, deployment: Object, new_hash: str
) -> list[Object]:
    """The pods of `deployment` once the old ones are gone (kwok deletes them within moments)."""
    return wait_for(
        lambda: pods_of(kube, namespace, deployment),
        30,
        "only pods of the new template",
        0.3,
        until=lambda found: all(
            pod["metadata"]["labels"]["pod-template-hash"] == new_hash for pod in found
        ),
    )


def test_install_runs_the_migration_hook_to_completion_then_waits_for_every_deployment(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    with kube.watch(jobs(namespace), tmp_path / "jobs.watch") as watch:
        kube.install(namespace)
        events = watch.wait_for(migrations_finished)

    # The Job as the API server admitted it: a pre-install hook, deleted once it succeeded.
    (added,) = events_of(events, MIGRATIONS, "ADDED")
    annotations = added["object"]["metadata"]["annotations"]
    assert {key: annotations.get(key) for key in HOOK_ANNOTATIONS} == HOOK_ANNOTATIONS
    complete = [
        e["object"]
        for e in events_of(events, MIGRATIONS, "MODIFIED")
        if condition(e["object"], "Complete") == "True"
    ]
    assert complete, f"the Job never completed: {[e['type'] for e in events]}"
    job = complete[-1]
    assert job["status"]["succeeded"] == 1
    # Helm's own record of the hook.
    status = json.loads(kube.helm_ok("status", RELEASE, "-n", namespace, "-o", "json"))
    (hook,) = [h for h in status["hooks"] if (h["kind"], h["name"]) == ("Job", MIGRATIONS)]
    assert hook["events"] == ["pre-install", "pre-upgrade"]
    assert hook["last_run"]["phase"] == "Succeeded"

    found = deployments(kube, namespace)
    assert set(found) == {f"{RELEASE}-{c}" for c in COMPONENTS}
    for name, deployment in found.items():
        assert condition(deployment, "Available") == "True", name
        assert deployment["status"].get("readyReplicas") == deployment["spec"]["replicas"], name
        # Whole seconds on both sides: "not before the Job finished" is what they can show.
        created = timestamp(deployment["metadata"]["creationTimestamp"])
        assert created >= timestamp(job["status"]["completionTime"]), name
        pods = pods_of(kube, namespace, deployment)
        assert len(pods) == deployment["spec"]["replicas"], name
        assert all(is_ready(pod) for pod in pods), name


def test_upgrade_with_new_values_migrates_again_and_rolls_every_deployment_onto_new_pods(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    kube.install(namespace)
    before = deployments(kube, namespace)
    old_hashes = {name: template_hash(kube, namespace, d) for name, d in before.items()}

    with kube.watch(jobs(namespace), tmp_path / "jobs.watch") as watch:
        # A setting of every process (so every pod template changes) and more consumers.
        kube.helm_ok(
            "upgrade",
            RELEASE,
            str(CHART),
            "-n",
            namespace,
            "--wait",
            "--timeout",
            WAIT,
            "--set",
            "consumer.replicas=3",
            "--set",
            "config.logLevel=DEBUG",
        )
        events = watch.wait_for(migrations_finished)

    assert events_of(events, MIGRATIONS, "ADDED"), "the migrations ran as a pre-upgrade hook"
    for name in before:
        kube.run("rollout", "status", f"deployment/{name}", "-n", namespace, "--timeout=60s")
    after = deployments(kube, namespace)
    for name, deployment in after.items():
        assert deployment["metadata"]["generation"] > before[name]["metadata"]["generation"]
        assert deployment["status"]["observedGeneration"] == deployment["metadata"]["generation"]
        new_hash = template_hash(kube, namespace, deployment)
        assert new_hash != old_hashes[name], f"{name} kept its ReplicaSet"
        pods = pods_after_rollout(kube, namespace, deployment, new_hash)
        assert {p["metadata"]["labels"]["pod-template-hash"] for p in pods} == {new_hash}, name
        assert len(pods) == deployment["spec"]["replicas"], name
        assert all(is_ready(pod) for pod in pods), name
    consumer = after[f"{RELEASE}-consumer"]
    assert consumer["spec"]["replicas"] == 3
    assert env_of(container(consumer, "consumer"))["LOG_LEVEL"] == "DEBUG"


def exit_successfully(kube: Kube, namespace: str, pod: Object) -> None:
    """Report every container of `pod` as exited with 0, as the kubelet would."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    terminated = {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}
    status = {
        "phase": "Succeeded",
        "conditions": [
            {"type": kind, "status": "False", "reason": "PodCompleted", "lastTransitionTime": now}
            for kind in ("Ready", "ContainersReady")
        ],
        "containerStatuses": [
            {
                "name": c["name"],
                "image": c["image"],
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {"terminated": terminated},
            }
            for c in pod["spec"]["containers"]
        ],
    }
    kube.run(
        "patch",
        "pod",
        pod["metadata"]["name"],
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def test_helm_test_starts_the_locked_down_test_pod_and_passes_once_it_succeeds(
    kube: Kube, namespace: str
) -> None:
    kube.install(namespace)
    name = f"{RELEASE}-test"

    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(kube.helm, "test", RELEASE, "-n", namespace, "--timeout", "60s")
        pod = wait_for(
            lambda: kube.find("pod", name, "-n", namespace),
            60,
            "the test pod ready, or helm test over",
            0.3,
            until=lambda found: running.done() or (found is not None and is_ready(found)),
        )
        assert not running.done(), f"helm test ended early: {running.result().stderr}"
        assert pod is not None
        assert is_ready(pod), pod["status"]
        # kwok completes only pods owned by a Job: report the exit a real kubelet would.
        exit_successfully(kube, namespace, pod)
        result = running.result(timeout=90)

    assert not security_problems(f"Pod/{name}", pod["spec"])
    assert result.returncode == 0, result.stderr
    assert re.search(rf"TEST SUITE:\s+{name}\n", result.stdout), result.stdout
    assert re.search(r"Phase:\s+Succeeded", result.stdout), result.stdout
    wait_for(
        lambda: kube.find("pod", name, "-n", namespace),
        30,
        "the hook-succeeded policy to delete the test pod",
        0.3,
        until=lambda found: found is None,
    )


def everything_in(kube: Kube, namespace: str) -> list[Object]:
    """Every object of every namespaced kind the server lists, but Events."""
    kinds = kube.run("api-resources", "--verbs=list", "--namespaced", "-o", "name")
    listed = [kind for kind in kinds.stdout.split() if kind not in HISTORY_KINDS]
    return kube.items(",".join(listed), "-n", namespace)


def cluster_scoped_of(kube: Kube, namespace: str) -> list[str]:
    """The release's ClusterRoles and ClusterRoleBindings (named after its namespace)."""
    found = kube.items("clusterroles,clusterrolebindings", "-l", INSTANCE)
    return [ident(o) for o in found if o["metadata"]["name"].startswith(f"{namespace}-")]


def test_uninstall_leaves_nothing_of_the_release_behind_but_the_crd(
    kube: Kube, namespace: str, third_party_crds: None
) -> None:
    # Every optional integration on: the most kinds to leave behind, cluster-scoped RBAC too.
    kube.install(namespace, "--values", str(CHART / "ci" / "all-integrations-values.yaml"))
    installed = {ident(o) for o in everything_in(kube, namespace)} - NAMESPACE_DEFAULTS
    kinds = {name.split("/")[0] for name in installed}
    assert {"Deployment", "ReplicaSet", "Pod", "Service", "Secret", "ConfigMap"} <= kinds
    assert {"NetworkPolicy", "ScaledObject", "ServiceMonitor", "PrometheusRule"} <= kinds
    assert len(cluster_scoped_of(kube, namespace)) == 2, "a ClusterRole and its binding"

    # Foreground: the Deployments are gone only once their ReplicaSets and pods are.
    kube.helm_ok(
        "uninstall", RELEASE, "-n", namespace, "--cascade=foreground", "--wait", "--timeout", WAIT
    )

    wait_for(
        lambda: sorted({ident(o) for o in everything_in(kube, namespace)} - NAMESPACE_DEFAULTS),
        30,
        "nothing of the release left behind",
        0.3,
        until=lambda left: not left,
    )
    assert not cluster_scoped_of(kube, namespace)
    assert not kube.helm_ok("list", "-n", namespace, "--all", "-q").strip()
    # Helm installs crds/ but never deletes them: the HeartbeatSimulations of every other
    # release would go with the CRD.
    assert kube.find("crd", "heartbeatsimulations.heartbeat.dev") is not None
