"""The chart as its README tells a user to install it."""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from .helm import CHART, RELEASE, Helm
from .manifests import container, env_of, ident, named, pods

pytestmark = pytest.mark.chart

README = CHART / "README.md"
SCRIPT = CHART / "scripts" / "values_table.py"


def values_table() -> ModuleType:
    spec = importlib.util.spec_from_file_location("values_table", SCRIPT)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README.read_text(), re.DOTALL)


def test_readme_values_table_is_generated_from_the_current_values_yaml() -> None:
    script = values_table()
    readme = README.read_text()
    assert script.with_table(readme, (CHART / "values.yaml").read_text()) == readme, (
        f"the values table is stale: run python {SCRIPT.relative_to(CHART.parents[1])}"
    )


def test_values_table_has_a_row_for_every_leaf_of_values_yaml() -> None:
    rows = {row.key: row for row in values_table().rows((CHART / "values.yaml").read_text())}
    for key in (
        "image.repository",
        "image.tag",
        "kafka.sasl.existingSecret",
        "kafka.tls.caSecret",
        "postgresql.tls.caConfigMap",
        "extraEnvFrom",
        "consumer.podDisruptionBudget.maxUnavailable",
        "consumer.topologySpreadConstraints",
        "networkPolicy.kafka.ports",
    ):
        assert key in rows, key
    assert rows["image.tag"].default == '""'
    assert "appVersion" in rows["image.tag"].description


def test_values_table_refuses_a_value_without_a_comment() -> None:
    script = values_table()
    with pytest.raises(script.UndocumentedValue, match=r"consumer\.newKnob"):
        script.rows("consumer:\n  # -- Documented.\n  replicas: 2\n  newKnob: 1\n")


def test_values_table_reads_multi_line_comments_and_documented_maps() -> None:
    rows = values_table().rows(
        "# -- First line\n# second line.\nresources:\n  requests:\n    cpu: 1\n"
        "group:\n  # -- A leaf.\n  leaf: true\n"
    )
    assert [(r.key, r.type, r.default, r.description) for r in rows] == [
        ("resources", "object", '{"requests":{"cpu":1}}', "First line second line."),
        ("group.leaf", "bool", "true", "A leaf."),
    ]


def test_chart_renders_at_the_kubernetes_version_helm_assumes_when_built_without_flags(
    helm: Helm,
) -> None:
    # A helm built without its version flags assumes Kubernetes 1.20 for `helm template`.
    result = helm.run("template", RELEASE, str(CHART), "--kube-version", "1.20.0")
    assert result.returncode == 0, result.stderr


def test_helm_template_needs_no_kube_version(helm: Helm) -> None:
    result = helm.run("template", RELEASE, str(CHART))
    assert result.returncode == 0, result.stderr


def test_no_command_in_the_readme_puts_a_password_on_a_command_line() -> None:
    for block in shell_blocks():
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            for word in words:
                assert not re.search(r"password=(?!\./)", word, re.IGNORECASE) or word.startswith(
                    "--from-file="
                ), line
            assert "--from-literal" not in words, line


def test_quick_start_installs_from_an_existing_secret_and_a_registry(helm: Helm) -> None:
    (install,) = [
        b.replace("\\\n", " ")
        for b in shell_blocks()
        if "helm install heartbeat charts/heartbeat" in b and "--set" in b
    ]
    line = next(line for line in install.splitlines() if line.startswith("helm install"))
    sets = dict(
        word.split("=", 1)
        for word in shlex.split(line)[shlex.split(line).index("-n") + 2 :]
        if "=" in word
    )
    assert "postgresql.password" not in sets
    assert sets["postgresql.existingSecret"]
    secret = re.search(r"create secret generic (\S+) --from-file=(\w+)=", install)
    assert secret
    assert sets["postgresql.existingSecret"] == secret.group(1)
    manifests = helm.render(CHART, sets=sets)
    for manifest, spec in pods(manifests):
        for c in spec["containers"]:
            assert c["image"] == f"{sets['image.repository']}:0.1.0", ident(manifest)
    consumer = env_of(container(named(manifests, "Deployment", f"{RELEASE}-consumer"), "consumer"))
    assert consumer["PGPASSWORD"] == {
        "secretKeyRef": {"name": secret.group(1), "key": secret.group(2)}
    }


def test_default_image_tag_is_the_charts_app_version(helm: Helm) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    manifests = helm.render(CHART, sets={"image.repository": "registry.example.com/hb"})
    operator = env_of(container(named(manifests, "Deployment", f"{RELEASE}-operator"), "operator"))
    assert operator["OPERATOR_GENERATOR_IMAGE"] == f"registry.example.com/hb:{chart['appVersion']}"
    tagged = helm.render(CHART, sets={"image.tag": "1.2.3"})
    consumer = container(named(tagged, "Deployment", f"{RELEASE}-consumer"), "consumer")
    assert consumer["image"] == "heartbeat:1.2.3"


def test_the_values_table_script_stays_out_of_the_packaged_chart(
    helm: Helm, tmp_path: Path
) -> None:
    result = helm.run("package", str(CHART), "--destination", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (package,) = tmp_path.glob("heartbeat-*.tgz")
    with tarfile.open(package) as archive:
        names = archive.getnames()
    assert "heartbeat/values.yaml" in names
    assert not [n for n in names if n.startswith("heartbeat/scripts/")]
