"""skaffold.yaml's ``local-node`` profile: what it hands helm, and `skaffold run` on the node.

The first test renders both charts with the values the profile passes (its templates filled
in from `heartbeat_localstack.skaffold.profile_env`, as skaffold fills them) and needs only
the cached helm. The second runs skaffold itself against the real node and reads the stored
readings back from PostgreSQL; it is skipped where skaffold is not built
(`make skaffold`) or no real node can start. The third does skaffold's steps itself from the
profile (build, after-build hook, helm releases) on the real node, so the profile's part is
proven where skaffold cannot be built.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from heartbeat_localstack import devtools
from heartbeat_localstack import skaffold as skaffold_env
from heartbeat_localstack.cluster.build import binaries
from heartbeat_localstack.cluster.local_images import ImageUser, LocalImages
from heartbeat_localstack.docker import DockerCLI
from tests.support.kube import Kubectl
from tests.support.polling import wait_for

from .conftest import RealCluster

ROOT = Path(__file__).resolve().parents[2]
PROFILE = "local-node"
NAMESPACE = "skaffold-local-node"
SKAFFOLD_TIMEOUT = 1200.0
TEMPLATE = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")

pytestmark = pytest.mark.integration


def profile(name: str = PROFILE) -> dict[str, Any]:
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    found: dict[str, Any] = next(p for p in config["profiles"] if p["name"] == name)
    return found


def expand(text: str, env: Mapping[str, str]) -> str:
    """A skaffold template of ``{{.NAME}}`` fields; a name `env` lacks is an error here."""
    return TEMPLATE.sub(lambda match: env[match.group(1)], text)


def set_flags(release: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    flags: list[str] = []
    for key, value in release.get("setValues", {}).items():
        flags += ["--set", f"{key}={value}"]
    for key, value in release.get("setValueTemplates", {}).items():
        flags += ["--set", f"{key}={expand(str(value), env)}"]
    return flags


def containers(manifests: str) -> dict[str, dict[str, Any]]:
    """Every container of the rendered workloads, by name."""
    found: dict[str, dict[str, Any]] = {}
    for doc in yaml.safe_load_all(manifests):
        spec = (doc or {}).get("spec", {})
        pod = spec.get("template", {}).get("spec") or spec.get("jobTemplate", {}).get(
            "spec", {}
        ).get("template", {}).get("spec", {})
        for container in pod.get("containers", []) if pod else []:
            found[container["name"]] = {**container, "pod": pod}
    return found


@pytest.fixture(scope="module")
def helm() -> Path:
    built = binaries()
    if not built.is_built():
        pytest.skip("the cluster's helm is not built (make cluster-build)")
    return built.path("helm")


def test_local_node_profile_hands_helm_the_local_images_never_pulled(helm: Path) -> None:
    images = LocalImages(
        app="heartbeat:dev",
        kafka="heartbeat-kafka:4.1.1-abc",
        postgres="heartbeat-postgres:15-def",
        kafka_user=ImageUser(1000, 1001),
        postgres_user=ImageUser(100, 102),
    )
    env = {
        **skaffold_env.profile_env(
            "base/python:1", "base/python-build:1", "wheels:1", images, Path("/s"), "/bin"
        ),
        # What skaffold itself gives the templates for the image it built.
        "IMAGE_REPO_heartbeat": "heartbeat",
        "IMAGE_TAG_heartbeat": "0123abcd",
    }
    local = profile()
    assert local["build"]["local"]["push"] is False
    artifact = local["build"]["artifacts"][0]
    build_args = {k: expand(v, env) for k, v in artifact["docker"]["buildArgs"].items()}
    assert build_args == {
        "BASE_IMAGE": "base/python:1",
        "BUILD_IMAGE": "base/python-build:1",
        "WHEELHOUSE": "wheels:1",
    }
    hook = artifact["hooks"]["after"][0]["command"]
    assert "heartbeat_localstack.skaffold load" in hook[-1]

    rendered: dict[str, dict[str, dict[str, Any]]] = {}
    for release in local["deploy"]["helm"]["releases"]:
        result = subprocess.run(
            [
                str(helm),
                "template",
                release["name"],
                str(ROOT / release["chartPath"]),
                *set_flags(release, env),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        rendered[release["name"]] = containers(result.stdout)

    deps = {container["image"]: container for container in rendered["heartbeat-dev-deps"].values()}
    assert images.kafka in deps, sorted(deps)
    assert images.postgres in deps, sorted(deps)
    for image, user in ((images.kafka, images.kafka_user), (images.postgres, images.postgres_user)):
        container = deps[image]
        assert container["imagePullPolicy"] == "Never"
        context = {
            **container["pod"].get("securityContext", {}),
            **container.get("securityContext", {}),
        }
        assert (context.get("runAsUser"), context.get("runAsGroup")) == (user.uid, user.gid)

    pipeline = rendered["heartbeat"]
    assert pipeline, "charts/heartbeat rendered no workload"
    for name, container in pipeline.items():
        assert container["image"] == "heartbeat:0123abcd", name
        assert container["imagePullPolicy"] == "Never", name


@pytest.fixture(scope="session")
def skaffold() -> Path:
    """The built skaffold; of the cluster's scope and asked for first, so a skip starts none."""
    built = devtools.located(devtools.TOOLS["skaffold"])
    if not built.is_built():
        pytest.skip(
            f"skaffold {built.tool.version} is not built (make skaffold builds it from "
            f"{built.tool.package})"
        )
    return built.path


@pytest.fixture(scope="module")
def skaffold_run(skaffold: Path, real_cluster: RealCluster) -> Iterator[dict[str, str]]:
    """`skaffold run -p local-node` into its own namespace, deleted again afterwards."""
    kubeconfig = real_cluster.cluster.kubeconfig
    env = {
        **os.environ,
        **skaffold_env.machine_env(ROOT, real_cluster.cluster.state_dir),
        "KUBECONFIG": str(kubeconfig),
    }
    common = ["-p", PROFILE, "--kubeconfig", str(kubeconfig), "-n", NAMESPACE]
    real_cluster.kubectl().run("create", "namespace", NAMESPACE, check=False, timeout=60)
    result = subprocess.run(
        [str(skaffold), "run", *common],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=SKAFFOLD_TIMEOUT,
    )
    try:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        yield env
    finally:
        subprocess.run(
            [str(skaffold), "delete", *common], cwd=ROOT, env=env, check=False, timeout=600
        )


def _stored(kube: Kubectl) -> int:
    """The readings in the namespace's PostgreSQL; 0 while it does not answer."""
    query = ["psql", "-U", "heartbeat", "heartbeat", "-tAc", "select count(*) from heartbeats"]
    result = kube.run("exec", "deploy/postgresql", "--", *query, check=False, timeout=60)
    return int(result.stdout.strip()) if result.returncode == 0 else 0


def _images(kube: Kubectl, *, running: bool = False) -> set[str]:
    """The images of the namespace's pods' containers (of its Running pods only, if asked)."""
    return {
        container["image"]
        for pod in kube.items("pods")
        if not running or pod["status"].get("phase") == "Running"
        for container in pod["spec"]["containers"]
    }


def test_skaffold_run_local_node_stores_readings_from_pods(
    skaffold_run: dict[str, str], real_cluster: RealCluster
) -> None:
    kube = real_cluster.kubectl(NAMESPACE)
    images = _images(kube)
    assert any(image.startswith("heartbeat:") and image != "heartbeat:dev" for image in images)
    assert real_cluster.images.kafka in images
    assert real_cluster.images.postgres in images
    wait_for(lambda: _stored(kube), timeout=300, what="readings stored by the pods")


PROFILE_NAMESPACE = "skaffold-profile"
PROFILE_TAG = "skaffold-profile-test"


def test_local_node_profile_steps_run_on_the_real_node(real_cluster: RealCluster) -> None:
    """What `skaffold run -p local-node` would do, done here step by step from the profile:
    the build with its build args, the after-build hook, each helm release with its values.
    Proves the profile's part on the node wherever skaffold itself cannot be built."""
    env = {
        **os.environ,
        **skaffold_env.machine_env(ROOT, real_cluster.cluster.state_dir),
        "IMAGE_REPO_heartbeat": "heartbeat",
        "IMAGE_TAG_heartbeat": PROFILE_TAG,
    }
    image = f"heartbeat:{PROFILE_TAG}"
    local = profile()
    artifact = local["build"]["artifacts"][0]
    build = ["docker", "build", "--file", artifact["docker"]["dockerfile"], "--tag", image]
    for key, value in artifact["docker"]["buildArgs"].items():
        build += ["--build-arg", f"{key}={expand(value, env)}"]
    docker = DockerCLI()
    previous = docker.image_id(image)
    subprocess.run([*build, artifact["context"]], cwd=ROOT, env=env, check=True, timeout=1800)
    if previous and previous != docker.image_id(image):
        # The tag moved on (the sources changed): the image it named is not left behind.
        docker.run(["image", "rm", previous], check=False)
    for hook in artifact["hooks"]["after"]:
        subprocess.run(hook["command"], cwd=ROOT, env={**env, "SKAFFOLD_IMAGE": image}, check=True)
    kube = real_cluster.kubectl(PROFILE_NAMESPACE)
    releases = local["deploy"]["helm"]["releases"]
    try:
        for release in releases:
            install = ["upgrade", "--install", release["name"]]
            install += [str(ROOT / release["chartPath"]), "--wait", "--timeout", "10m"]
            if release.get("createNamespace"):
                install.append("--create-namespace")
            kube.helm_ok(*install, *set_flags(release, env), timeout=900)
        running = _images(kube, running=True)
        assert {image, real_cluster.images.kafka, real_cluster.images.postgres} <= running
        wait_for(lambda: _stored(kube), timeout=300, what="readings stored by the pods")
    finally:
        for release in reversed(releases):
            kube.helm("uninstall", release["name"], "--wait", timeout=600)
