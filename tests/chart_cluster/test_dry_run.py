"""The API server accepts everything the chart renders, for every ci/ scenario.

Helm installs crds/ before the templates, so the chart's CRD is applied for real first (a
stronger check than a dry run), then every other manifest goes through
``kubectl apply --dry-run=server --validate=strict``: admission, defaulting, schema validation
and unknown-field rejection, without storing anything.

ServiceMonitor, PrometheusRule, ScaledObject and TriggerAuthentication belong to
prometheus-operator and KEDA, which do not run here. They are checked against the schema-less
stand-in CRDs of ``crds/``: that proves their apiVersion, kind and metadata are accepted by
a server that knows those kinds, not the shape of their spec, which tests/chart checks offline.
The upstream CRDs are not copied in: they are large, change with each release of those
projects, and the version a user runs is not ours to pin.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.chart.helm import CHART, CI_VALUES, KUBE_VERSION, RELEASE, scenario_id
from tests.chart.manifests import Manifest, ident, of_kind
from tests.chart.readme import readme_example_secrets, readme_managed_example
from tests.support.kube import ON_THE_CLUSTER, CommandError

from .kube import Kube

pytestmark = [*ON_THE_CLUSTER, pytest.mark.chart]

README = CHART / "README.md"


def render(kube: Kube, namespace: str, values: Path) -> list[Manifest]:
    """The scenario rendered for `namespace`, CRDs and hooks included, as helm would install it."""
    stdout = kube.helm_ok(
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        "--include-crds",
        "--kube-version",
        KUBE_VERSION,
        "--values",
        str(values),
    )
    return [doc for doc in yaml.safe_load_all(stdout) if doc]


@pytest.mark.usefixtures("third_party_crds")
@pytest.mark.parametrize("scenario", CI_VALUES, ids=scenario_id)
def test_every_rendered_manifest_passes_the_api_servers_own_validation(
    kube: Kube, namespace: str, scenario: Path
) -> None:
    manifests = render(kube, namespace, scenario)
    crds = of_kind(manifests, "CustomResourceDefinition")
    rest = [m for m in manifests if m["kind"] != "CustomResourceDefinition"]
    assert crds, "the chart's CRD is part of what helm installs"
    kube.apply_crds(crds)
    # The ServiceAccount admission plugin looks a pod's account up in storage, and a dry-run
    # creation stores nothing; Helm creates the `helm test` pod long after the account exists.
    kube.apply(of_kind(rest, "ServiceAccount"), "-n", namespace)

    answer = kube.apply(rest, "-n", namespace, "--dry-run=server")

    admitted = answer["items"] if answer["kind"] == "List" else [answer]
    assert sorted(ident(m) for m in admitted) == sorted(ident(m) for m in rest)
    for manifest in admitted:
        # Namespaced objects landed in the test's namespace; cluster-scoped ones have none.
        assert manifest["metadata"].get("namespace") in (namespace, None), ident(manifest)


@pytest.mark.usefixtures("third_party_crds")
@pytest.mark.parametrize("scenario", CI_VALUES, ids=scenario_id)
def test_every_pod_the_chart_renders_meets_the_restricted_pod_security_standard(
    kube: Kube, namespace: str, scenario: Path
) -> None:
    # The API server's own PodSecurity admission judges the pods: it refuses a Pod that
    # breaks the restricted standard and warns about a workload whose pods would.
    kube.run(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
    )
    manifests = render(kube, namespace, scenario)
    kube.apply_crds(of_kind(manifests, "CustomResourceDefinition"))
    rest = [m for m in manifests if m["kind"] != "CustomResourceDefinition"]
    kube.apply(of_kind(rest, "ServiceAccount"), "-n", namespace)
    listing = {"apiVersion": "v1", "kind": "List", "items": rest}

    done = kube.run(
        "apply", "-n", namespace, "--dry-run=server", "-f", "-", stdin=json.dumps(listing)
    )

    assert "PodSecurity" not in done.stderr, done.stderr
    assert "pod/" in done.stdout, "the helm test pod itself went through admission"


@pytest.mark.usefixtures("third_party_crds")
def test_the_readmes_managed_kafka_and_postgresql_example_passes_a_server_side_dry_run(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    values = tmp_path / "managed-values.yaml"
    values.write_text(yaml.safe_dump(readme_managed_example()))
    # The Secrets the README has the user create, for real (placeholder contents): the
    # chart's manifests reference them, and a dry run stores nothing of its own.
    secrets = readme_example_secrets()
    kube.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name},
                "stringData": {key: f"placeholder {key}" for key in sorted(keys)},
            }
            for name, keys in secrets.items()
        ],
        "-n",
        namespace,
    )
    manifests = render(kube, namespace, values)
    kube.apply_crds(of_kind(manifests, "CustomResourceDefinition"))
    rest = [m for m in manifests if m["kind"] != "CustomResourceDefinition"]
    assert not of_kind(rest, "Secret"), "every credential is in the user's own Secrets"
    kube.apply(of_kind(rest, "ServiceAccount"), "-n", namespace)

    answer = kube.apply(rest, "-n", namespace, "--dry-run=server")

    admitted = answer["items"] if answer["kind"] == "List" else [answer]
    assert sorted(ident(m) for m in admitted) == sorted(ident(m) for m in rest)
    kinds = {m["kind"] for m in admitted}
    assert {"Deployment", "Job", "CronJob", "Pod", "NetworkPolicy"} <= kinds
    consumer = next(m for m in admitted if ident(m) == f"Deployment/{RELEASE}-consumer")
    volumes = {v["name"]: v for v in consumer["spec"]["template"]["spec"]["volumes"]}
    # The server kept the projected TLS volumes as rendered, read-only mode included.
    assert volumes["kafka-tls"]["projected"]["defaultMode"] == 0o440
    assert volumes["postgresql-tls"]["projected"]["sources"] == [
        {"secret": {"name": "heartbeat-db-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
    ]


def readme_example() -> Manifest:
    """The HeartbeatSimulation the chart README shows."""
    section = README.read_text().split("## HeartbeatSimulation", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block, "the README's HeartbeatSimulation section has a yaml example"
    example: Manifest = yaml.safe_load(block.group(1))
    assert example["kind"] == "HeartbeatSimulation"
    return example


def test_the_crd_accepts_the_readmes_heartbeatsimulation_and_refuses_zero_customers(
    kube: Kube, namespace: str
) -> None:
    kube.apply_crds(
        doc
        for path in sorted((CHART / "crds").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    )
    example = readme_example()
    kube.apply([example], "-n", namespace, "--dry-run=server")

    no_customers = {**example, "spec": {**example["spec"], "customers": 0}}
    with pytest.raises(CommandError, match=r"spec\.customers"):
        kube.apply([no_customers], "-n", namespace, "--dry-run=server")
