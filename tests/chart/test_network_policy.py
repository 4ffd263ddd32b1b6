"""NetworkPolicies: each pod of the release may reach exactly what its component needs.

The policies are evaluated here as the NetworkPolicy API defines them (a pod is isolated in a
direction once a policy of that type selects it; what it may do is the union of the rules of
the policies selecting it), over the rendered pods themselves, so a label that drifts from a
policy's selector fails here. No local cluster enforces them: kwok runs no network, and the
real node's plugin is not one that enforces NetworkPolicies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from heartbeat_operator.manifests import GeneratorConfig, SimulationRef, statefulset
from heartbeat_operator.spec import parse_spec

from .helm import CHART, RELEASE, Helm
from .manifests import Manifest, ident, of_kind, pod_spec, pods

pytestmark = pytest.mark.chart

ANY = "any"
DNS = {(53, "UDP", ANY), (53, "TCP", ANY)}
METRICS_FROM_ANYWHERE = {("metrics", "TCP", ANY)}
TEST_POD = json.dumps(
    [
        {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "heartbeat",
                    "app.kubernetes.io/instance": RELEASE,
                    "app.kubernetes.io/component": "test",
                }
            }
        }
    ],
    sort_keys=True,
)
CONSUMER_PODS = TEST_POD.replace('"test"', '"consumer"')


def _peers(peers: list[Any] | None) -> str:
    return json.dumps(peers, sort_keys=True) if peers else ANY


def pod_labels(manifest: Manifest) -> dict[str, str]:
    if manifest["kind"] == "Pod":
        return dict(manifest["metadata"]["labels"])
    if manifest["kind"] == "CronJob":
        return dict(manifest["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"])
    return dict(manifest["spec"]["template"]["metadata"]["labels"])


def selecting(policies: list[Manifest], labels: dict[str, str]) -> list[Manifest]:
    return [
        p
        for p in policies
        if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        and not p["spec"]["podSelector"].get("matchExpressions")
    ]


def allowed(policies: list[Manifest], direction: str) -> set[tuple[Any, str, str]]:
    """(port, protocol, peers) the selecting policies allow in one direction."""
    peer_key = "from" if direction == "ingress" else "to"
    found = set()
    for policy in policies:
        for rule in policy["spec"].get(direction, []):
            for port in rule["ports"]:  # a rule without ports would allow every port
                found.add((port["port"], port["protocol"], _peers(rule.get(peer_key))))
    return found


def isolated(policies: list[Manifest], direction: str) -> bool:
    kind = direction.capitalize()
    return any(kind in p["spec"]["policyTypes"] for p in policies)


def expected(component: str, kafka: set[int], postgresql: set[int]) -> dict[str, set[Any]]:
    to_kafka = {(port, "TCP", ANY) for port in kafka}
    to_postgresql = {(port, "TCP", ANY) for port in postgresql}
    return {
        "consumer": {
            "ingress": METRICS_FROM_ANYWHERE | {("metrics", "TCP", TEST_POD)},
            "egress": DNS | to_kafka | to_postgresql,
        },
        "producer": {"ingress": METRICS_FROM_ANYWHERE, "egress": DNS | to_kafka},
        "operator": {
            "ingress": METRICS_FROM_ANYWHERE,
            "egress": DNS | {(443, "TCP", ANY), (6443, "TCP", ANY)},
        },
        "migrations": {"ingress": set(), "egress": DNS | to_postgresql},
        "maintenance": {"ingress": set(), "egress": DNS | to_postgresql},
        "test": {"ingress": set(), "egress": DNS | to_postgresql | {(8000, "TCP", CONSUMER_PODS)}},
    }[component]


def generator_pod(namespace: str = "pipeline") -> Manifest:
    """A StatefulSet the operator writes for a HeartbeatSimulation, as its own code builds it."""
    return statefulset(
        SimulationRef(namespace=namespace, name="ward-7", uid="0000"),
        parse_spec({"customers": 10}),
        GeneratorConfig(image="heartbeat:test"),
    )


@pytest.mark.parametrize(
    ("sets", "kafka", "postgresql"),
    [
        ({"kafka.bootstrapServers": "k1:9094,k2:9094"}, {9094}, {5432}),
        (
            {"kafka.bootstrapServers": "k1:9092,k2:9093", "postgresql.port": 6432},
            {9092, 9093},
            {6432},
        ),
        (
            {"networkPolicy.kafka.ports": [9096], "networkPolicy.postgresql.ports": [25060]},
            {9096},
            {25060},
        ),
    ],
    ids=["bootstrap-ports", "two-broker-ports", "explicit-ports"],
)
def test_each_pod_may_reach_exactly_what_its_component_needs(
    helm: Helm, sets: dict[str, Any], kafka: set[int], postgresql: set[int]
) -> None:
    manifests = helm.render(CHART, sets={"networkPolicy.enabled": True, **sets})
    policies = of_kind(manifests, "NetworkPolicy")
    checked = set()
    for manifest, _ in pods(manifests):
        labels = pod_labels(manifest)
        component = labels["app.kubernetes.io/component"]
        mine = selecting(policies, labels)
        assert [p["metadata"]["name"] for p in mine] == [f"{RELEASE}-{component}"], ident(manifest)
        assert isolated(mine, "ingress"), ident(manifest)
        assert isolated(mine, "egress"), ident(manifest)
        want = expected(component, kafka, postgresql)
        assert allowed(mine, "ingress") == want["ingress"], ident(manifest)
        assert allowed(mine, "egress") == want["egress"], ident(manifest)
        checked.add(component)
    assert checked == {"consumer", "producer", "operator", "migrations", "maintenance", "test"}


def test_the_operators_generator_pods_may_reach_kafka_and_dns_only(helm: Helm) -> None:
    manifests = helm.render(
        CHART, sets={"networkPolicy.enabled": True, "kafka.bootstrapServers": "k:9094"}
    )
    policies = of_kind(manifests, "NetworkPolicy")
    generator = generator_pod()
    mine = selecting(policies, pod_labels(generator))
    assert [p["metadata"]["name"] for p in mine] == [f"{RELEASE}-generator"]
    assert isolated(mine, "ingress")
    assert isolated(mine, "egress")
    assert allowed(mine, "ingress") == METRICS_FROM_ANYWHERE
    assert allowed(mine, "egress") == DNS | {(9094, "TCP", ANY)}
    ports = [p["name"] for c in pod_spec(generator)["containers"] for p in c["ports"]]
    assert "metrics" in ports, "the policies name the metrics port"


def test_metrics_ingress_comes_only_from_the_configured_scrape_source(rendered: Any) -> None:
    manifests = rendered(CHART / "ci" / "all-integrations-values.yaml")
    monitoring = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    policies = of_kind(manifests, "NetworkPolicy")
    for manifest, _ in pods(manifests):
        labels = pod_labels(manifest)
        ingress = allowed(selecting(policies, labels), "ingress")
        scrapes = {peers for port, _, peers in ingress if port == "metrics" and peers != TEST_POD}
        if labels["app.kubernetes.io/component"] in {"consumer", "producer", "operator"}:
            assert scrapes == {_peers(monitoring)}, ident(manifest)
        else:
            assert not ingress, ident(manifest)


def test_destinations_narrow_to_the_configured_peers(helm: Helm) -> None:
    kafka_net = [{"ipBlock": {"cidr": "10.20.0.0/16"}}]
    db_net = [{"ipBlock": {"cidr": "10.30.0.5/32"}}]
    api = [{"ipBlock": {"cidr": "172.18.0.2/32"}}]
    dns = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}]
    manifests = helm.render(
        CHART,
        sets={
            "networkPolicy.enabled": True,
            "networkPolicy.kafka.to": kafka_net,
            "networkPolicy.postgresql.to": db_net,
            "networkPolicy.apiServer": {"ports": [6443], "to": api},
            "networkPolicy.dns.to": dns,
        },
    )
    policies = of_kind(manifests, "NetworkPolicy")
    by_component = {
        pod_labels(m)["app.kubernetes.io/component"]: allowed(
            selecting(policies, pod_labels(m)), "egress"
        )
        for m, _ in pods(manifests)
    }
    dns_rules = {(53, "UDP", _peers(dns)), (53, "TCP", _peers(dns))}
    assert by_component["consumer"] == dns_rules | {
        (9092, "TCP", _peers(kafka_net)),
        (5432, "TCP", _peers(db_net)),
    }
    assert by_component["operator"] == dns_rules | {(6443, "TCP", _peers(api))}
    assert by_component["maintenance"] == dns_rules | {(5432, "TCP", _peers(db_net))}


def test_the_migration_hooks_policy_exists_exactly_while_the_hook_runs(
    defaults: Any, helm: Helm
) -> None:
    manifests = helm.render(CHART, sets={"networkPolicy.enabled": True})
    policy = next(
        p
        for p in of_kind(manifests, "NetworkPolicy")
        if p["metadata"]["name"] == f"{RELEASE}-migrations"
    )
    job = next(
        m for m in of_kind(manifests, "Job") if m["metadata"]["name"] == f"{RELEASE}-migrations"
    )
    hook = policy["metadata"]["annotations"]
    assert hook["helm.sh/hook"] == job["metadata"]["annotations"]["helm.sh/hook"]
    assert int(hook["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"]
    )
    assert hook["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"


def test_no_policy_without_network_policy_enabled(rendered: Any, scenario: Path) -> None:
    manifests = rendered(scenario)
    values = scenario.read_text()
    if "networkPolicy:\n  enabled: true" not in values:
        assert not of_kind(manifests, "NetworkPolicy"), scenario.name


def test_the_settings_of_the_generator_pods_need_no_postgresql() -> None:
    # The generators' policy allows no PostgreSQL: nothing in their pods may point at it.
    generator = generator_pod()
    (c,) = pod_spec(generator)["containers"]
    names = {e["name"] for e in c["env"]}
    assert not {n for n in names if n.startswith(("PG", "DATABASE_"))}
