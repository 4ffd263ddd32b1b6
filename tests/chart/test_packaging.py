"""The image recipe and the kind/skaffold files fit the chart (read as text: no Docker here)."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from .helm import CHART, CHARTS, ROOT

pytestmark = pytest.mark.chart

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _final_stage() -> str:
    return re.split(r"^FROM ", DOCKERFILE, flags=re.MULTILINE)[-1]


def _build_stage() -> str:
    (stage,) = [
        s for s in re.split(r"^FROM ", DOCKERFILE, flags=re.MULTILINE) if " AS build\n" in s
    ]
    return stage


def test_image_is_built_in_stages_and_runs_as_a_numeric_non_root_user() -> None:
    assert re.search(r"^FROM \S+ AS build$", DOCKERFILE, flags=re.MULTILINE)
    assert not re.search(r"^# *syntax=", DOCKERFILE, flags=re.MULTILINE), "pulls a frontend"
    final = _final_stage()
    (user,) = re.findall(r"^USER (\S+)", final, flags=re.MULTILINE)
    uid = re.search(r"^ARG UID=(\d+)", final, flags=re.MULTILINE)
    assert uid
    assert int(uid.group(1)) >= 1000
    assert user == "${UID}:${UID}"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid.group(1))


def test_final_image_copies_the_environment_built_from_wheels_only_and_starts_heartbeat() -> None:
    assert "PIP_ONLY_BINARY=:all:" in _build_stage()
    final = _final_stage()
    assert "COPY --from=build /opt/venv /opt/venv" in final
    assert not re.search(r"apt-get|build-essential|gcc|pip install", final)
    assert 'ENTRYPOINT ["heartbeat"]' in final


def _wheel_sources() -> set[str]:
    """Top-level folders pyproject builds the wheel from (packages and force-include)."""
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"][
        "targets"
    ]["wheel"]
    paths = [*wheel["packages"], *wheel.get("force-include", {})]
    return {path.split("/")[0] for path in paths}


def test_docker_context_and_build_stage_hold_what_the_wheel_is_built_from() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    build = _build_stage()
    assert "*" in lines
    for needed in ("pyproject.toml", "README.md"):
        assert f"!{needed}" in lines
    sources = _wheel_sources()
    assert {"app", "sql"} <= sources
    for folder in sources:
        assert f"!{folder}/" in lines, f".dockerignore leaves out {folder}/"
        assert re.search(rf"^COPY {folder} ", build, flags=re.MULTILINE), f"no COPY {folder}"


def test_skaffold_builds_the_image_the_chart_deploys() -> None:
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    (artifact,) = config["build"]["artifacts"]
    assert (ROOT / artifact["docker"]["dockerfile"]).is_file()
    image = artifact["image"]
    releases = config["deploy"]["helm"]["releases"]
    for profile in config["profiles"]:
        releases += profile["deploy"]["helm"]["releases"]
    for release in releases:
        assert (ROOT / release["chartPath"] / "Chart.yaml").is_file(), release["name"]
        if release["chartPath"] == "charts/heartbeat":
            templates = release["setValueTemplates"]
            assert templates["image.repository"] == f"{{{{.IMAGE_REPO_{image}}}}}"
            assert templates["image.tag"] == f"{{{{.IMAGE_TAG_{image}}}}}"


def test_dev_deps_profile_installs_kafka_and_postgresql_first_and_waits_for_them() -> None:
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    (profile,) = [p for p in config["profiles"] if p["name"] == "dev-deps"]
    deps, pipeline = profile["deploy"]["helm"]["releases"]
    assert deps["chartPath"] == "charts/dev-deps"
    assert deps["wait"] is True
    dev_values = yaml.safe_load((CHARTS / "dev-deps" / "values.yaml").read_text())
    settings = pipeline["setValues"]
    assert settings["kafka.bootstrapServers"] == (
        f"{dev_values['kafka']['serviceName']}:{dev_values['kafka']['port']}"
    )
    assert settings["postgresql.host"] == dev_values["postgresql"]["serviceName"]
    assert settings["postgresql.password"] == dev_values["postgresql"]["password"]
    assert settings["postgresql.username"] == dev_values["postgresql"]["username"]


def test_kind_config_describes_a_cluster() -> None:
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert [n["role"] for n in config["nodes"]] == ["control-plane"]
