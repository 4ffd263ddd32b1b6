"""The operator's ServiceAccount may do its work and nothing more, as the API server decides.

Every question is ``kubectl auth can-i --as=system:serviceaccount:<namespace>:<account>``
against the RBAC objects a real ``helm install`` created. OPERATOR_ACCESS is the one list of
what the operator may and may not do; when the chart's `heartbeat.operator.rules` change,
change it with them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import pytest

from tests.chart.helm import RELEASE
from tests.support.kube import ON_THE_CLUSTER
from tests.support.polling import wait_for

from .kube import Kube

pytestmark = [*ON_THE_CLUSTER, pytest.mark.chart]

HOME = "the release namespace"
ELSEWHERE = "another namespace"
CLUSTER = "cluster scope"
# Any namespace but the release's; `default` exists in every cluster.
OTHER_NAMESPACE = "default"

SIMULATIONS = "heartbeatsimulations.heartbeat.dev"
STATEFULSETS = "statefulsets.apps"
CRDS = "customresourcedefinitions.apiextensions.k8s.io"


class Access(NamedTuple):
    verb: str
    # `resource` or `resource/subresource`, fully qualified with its API group.
    resource: str
    where: str
    # Allowed with the default Role in the release namespace?
    namespaced: bool
    # Allowed with `operator.rbac.clusterWide` (a ClusterRole)?
    cluster_wide: bool

    def __str__(self) -> str:
        return f"{self.verb} {self.resource} in {self.where}"


OPERATOR_ACCESS = [
    # Its work: watch HeartbeatSimulations, patch them (kopf's annotations), report on them
    # in their status, and set blockOwnerDeletion on what they own (.../finalizers).
    Access("get", SIMULATIONS, HOME, True, True),
    Access("list", SIMULATIONS, HOME, True, True),
    Access("watch", SIMULATIONS, HOME, True, True),
    Access("patch", SIMULATIONS, HOME, True, True),
    Access("patch", f"{SIMULATIONS}/status", HOME, True, True),
    Access("update", f"{SIMULATIONS}/finalizers", HOME, True, True),
    # The generator StatefulSet of each HeartbeatSimulation, replaced whole when it drifts.
    Access("create", STATEFULSETS, HOME, True, True),
    Access("get", STATEFULSETS, HOME, True, True),
    Access("list", STATEFULSETS, HOME, True, True),
    Access("watch", STATEFULSETS, HOME, True, True),
    Access("update", STATEFULSETS, HOME, True, True),
    # The generator pods, to count the customers the ready ones simulate.
    Access("list", "pods", HOME, True, True),
    # Events about what it did.
    Access("create", "events", HOME, True, True),
    # The same work elsewhere only when it serves every namespace.
    Access("watch", SIMULATIONS, ELSEWHERE, False, True),
    Access("patch", f"{SIMULATIONS}/status", ELSEWHERE, False, True),
    Access("create", STATEFULSETS, ELSEWHERE, False, True),
    Access("get", STATEFULSETS, ELSEWHERE, False, True),
    Access("update", STATEFULSETS, ELSEWHERE, False, True),
    # Never: users own their HeartbeatSimulations; the garbage collector deletes the
    # StatefulSets with them (owner references); the operator needs no credentials, no
    # shell in a pod, no pods of its own (the StatefulSets make them), no more rights, and
    # does not manage the CRD (Helm installs it).
    Access("create", SIMULATIONS, HOME, False, False),
    Access("delete", SIMULATIONS, HOME, False, False),
    Access("update", f"{SIMULATIONS}/status", HOME, False, False),
    Access("patch", STATEFULSETS, HOME, False, False),
    Access("delete", STATEFULSETS, HOME, False, False),
    Access("delete", STATEFULSETS, ELSEWHERE, False, False),
    Access("get", "secrets", HOME, False, False),
    Access("list", "secrets", HOME, False, False),
    Access("watch", "secrets", ELSEWHERE, False, False),
    Access("create", "pods", HOME, False, False),
    Access("delete", "pods", HOME, False, False),
    Access("create", "pods/exec", HOME, False, False),
    Access("create", "rolebindings.rbac.authorization.k8s.io", HOME, False, False),
    Access("get", CRDS, CLUSTER, False, False),
    Access("create", CRDS, CLUSTER, False, False),
    Access("patch", CRDS, CLUSTER, False, False),
    Access("delete", CRDS, CLUSTER, False, False),
]


def can_i(kube: Kube, account: str, namespace: str, access: Access) -> bool:
    resource, _, subresource = access.resource.partition("/")
    scope = {HOME: ["-n", namespace], ELSEWHERE: ["-n", OTHER_NAMESPACE], CLUSTER: ["-A"]}
    answer = kube.run(
        "auth",
        "can-i",
        access.verb,
        resource,
        *([f"--subresource={subresource}"] if subresource else []),
        *scope[access.where],
        f"--as={account}",
        check=False,
    )
    # An unknown resource is answered "no" with a warning: that would prove nothing.
    assert "doesn't have a resource type" not in answer.stderr, f"{access}: {answer.stderr}"
    assert answer.stdout.strip() in ("yes", "no"), f"{access}: {answer.stderr}"
    return answer.stdout.strip() == "yes"


@pytest.mark.parametrize("cluster_wide", [False, True], ids=["namespaced", "cluster-wide"])
def test_operator_service_account_may_do_its_work_and_nothing_more(
    kube: Kube, namespace: str, cluster_wide: bool
) -> None:
    kube.install(
        namespace, "--set", f"operator.rbac.clusterWide={str(cluster_wide).lower()}", wait=False
    )
    operator = kube.get("deployment", f"{RELEASE}-operator", "-n", namespace)
    name = operator["spec"]["template"]["spec"]["serviceAccountName"]
    account = f"system:serviceaccount:{namespace}:{name}"
    # The authorizer reads RBAC objects from a cache: wait for the first grant to show.
    wait_for(
        lambda: can_i(kube, account, namespace, OPERATOR_ACCESS[0]), 30, "the first grant", 0.3
    )

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda a: can_i(kube, account, namespace, a), OPERATOR_ACCESS))

    expected = [a.cluster_wide if cluster_wide else a.namespaced for a in OPERATOR_ACCESS]
    wrong = [
        f"{access}: {'allowed' if got else 'denied'}"
        for access, got, want in zip(OPERATOR_ACCESS, answers, expected, strict=True)
        if got != want
    ]
    assert not wrong, "\n".join(wrong)
