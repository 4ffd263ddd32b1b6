"""The built image: who it runs as, that it needs no writable root, what it holds, its size."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from heartbeat_localstack.docker import DockerCLI
from tests.containers.conftest import REPORT

pytestmark = pytest.mark.integration

SIZE_LIMIT_BYTES = 300 * 1000 * 1000
COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "ld", "as", "make")
# Distributions that only a developer or a test run needs; none may be in the image.
DEVELOPMENT_DISTRIBUTIONS = {
    "pip", "setuptools", "wheel", "hatchling", "pytest", "pytest-timeout", "hypothesis",
    "testcontainers", "docker", "ruff", "mypy", "import-linter", "kubernetes-validate",
    "grafana-foundation-sdk", "pyyaml-include",
}  # fmt: skip
DISTRIBUTIONS_SCRIPT = (
    "import importlib.metadata as m, json; "
    "print(json.dumps(sorted({d.metadata['Name'].lower() for d in m.distributions()})))"
)


def docker_run(cli: DockerCLI, image: str, *args: str, options: tuple[str, ...] = ()):
    return cli.run(["run", "--rm", *options, image, *args], timeout=120, check=False)


def in_image(cli: DockerCLI, image: str, script: str) -> str:
    """The output of a shell script run in the image (as its user); fails the test on error."""
    result = docker_run(cli, image, "-c", script, options=("--entrypoint", "sh"))
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_image_runs_as_a_non_root_numeric_user(docker_cli, app_image):
    configured = docker_cli.run(["image", "inspect", "--format", "{{.Config.User}}", app_image])
    user = configured.stdout.strip()
    assert re.fullmatch(r"[1-9][0-9]*:[0-9]+", user), f"USER is {user!r}, not numeric uid:gid"
    running = docker_run(docker_cli, app_image, "-u", options=("--entrypoint", "id"))
    assert running.stdout.strip() == user.split(":")[0]


@pytest.mark.parametrize(
    "command", [["--help"], ["settings"], ["migrate", "--help"], ["operator", "--help"]]
)
def test_commands_exit_0_on_a_read_only_root_filesystem_and_write_nothing_to_it(
    docker_cli, app_image, command
):
    read_only = docker_run(docker_cli, app_image, *command, options=("--read-only",))
    assert read_only.returncode == 0, read_only.stderr
    assert read_only.stdout.strip()
    # The same command in a writable container leaves its file system unchanged.
    name = f"heartbeat-image-test-{uuid.uuid4().hex[:8]}"
    docker_cli.run(["create", "--name", name, app_image, *command])
    try:
        started = docker_cli.run(["start", "--attach", name], timeout=120, check=False)
        assert started.returncode == 0, started.stderr
        changes = docker_cli.run(["diff", name]).stdout.strip()
        assert changes == "", f"{' '.join(command)} wrote to the root filesystem:\n{changes}"
    finally:
        docker_cli.run(["rm", "--force", name], check=False)


def test_a_bad_setting_exits_2_naming_the_setting_without_a_traceback(docker_cli, app_image):
    result = docker_run(
        docker_cli,
        app_image,
        "consume",
        options=("--read-only", "-e", "CONSUMER_BATCH_MAX_MESSAGES=0"),
    )
    assert result.returncode == 2
    assert "CONSUMER_BATCH_MAX_MESSAGES" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_the_image_holds_no_compiler_no_pip_and_no_test_or_development_packages(
    docker_cli, app_image
):
    found = in_image(
        docker_cli,
        app_image,
        " ".join(f"command -v {tool};" for tool in COMPILERS) + " true",
    )
    assert found.strip() == "", f"build tools in the image: {found.split()}"
    python = docker_run(
        docker_cli, app_image, "-c", DISTRIBUTIONS_SCRIPT, options=("--entrypoint", "python")
    )
    assert python.returncode == 0, python.stderr
    distributions = set(json.loads(python.stdout))
    assert "heartbeat" in distributions
    assert distributions & DEVELOPMENT_DISTRIBUTIONS == set()
    system_pip = in_image(
        docker_cli,
        app_image,
        # The system interpreter the virtual environment was made from, outside the venv.
        'base="$(python3 -c "import sys; print(sys.base_prefix)")";'
        ' "$base/bin/python3" -c "import importlib.util as u; print(u.find_spec(\'pip\'))"',
    )
    assert system_pip.strip() == "None", "pip is installed in the system Python"
    debian = in_image(
        docker_cli,
        app_image,
        "if command -v dpkg-query >/dev/null; then dpkg-query -W -f '${Package}\\n'; fi",
    )
    packages = set(debian.split())
    development = {p for p in packages if p.endswith("-dev") or p in {"python3-pip", "cpp"}}
    assert development == set(), f"development packages: {sorted(development)}"


# What the image can import, and which top-level names the installed heartbeat brings.
SHIPPED_SCRIPT = (
    "import importlib.metadata as m, importlib.util as u, json; "
    "names = ('heartbeat_localstack', 'pytest', 'kopf', 'kubernetes', 'heartbeat_operator'); "
    "files = m.distribution('heartbeat').files; "
    "print(json.dumps({'importable': {n: u.find_spec(n) is not None for n in names}, "
    "'tops': sorted({f.parts[0] for f in files if '..' not in f.parts})}))"
)


def test_the_image_ships_the_product_and_the_operator_extra_but_no_local_services_or_pytest(
    docker_cli, app_image
):
    result = docker_run(
        docker_cli, app_image, "-c", SHIPPED_SCRIPT, options=("--entrypoint", "python")
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["importable"] == {
        "heartbeat_localstack": False,
        "pytest": False,
        "kopf": True,
        "kubernetes": True,
        "heartbeat_operator": True,
    }
    tops = {top for top in found["tops"] if not top.endswith(".dist-info")}
    assert tops == {"heartbeat", "heartbeat_operator"}


def test_the_image_is_smaller_than_300_mb(docker_cli, app_image):
    size = docker_cli.image_size(app_image)
    base = docker_cli.run(
        [
            "image",
            "inspect",
            "--format",
            '{{index .Config.Labels "org.opencontainers.image.base.name"}}',
            app_image,
        ]
    ).stdout.strip()
    base_size = docker_cli.image_size(base) if base and docker_cli.image_id(base) else 0
    breakdown = in_image(
        docker_cli,
        app_image,
        "du -sk /opt/venv | cut -f1;"
        " du -sk /opt/venv/lib/python3*/site-packages/* | sort -rn | head -6",
    ).split("\n")
    venv_kb = int(breakdown[0])
    largest = ", ".join(
        f"{line.split()[1].rsplit('/', 1)[1]} {int(line.split()[0]) / 1000:.0f} MB"
        for line in breakdown[1:]
        if line.strip()
    )
    REPORT.append(
        f"{app_image}: {size / 1e6:.0f} MB = base {base or '?'} {base_size / 1e6:.0f} MB"
        f" + /opt/venv {venv_kb / 1000:.0f} MB (largest: {largest})"
    )
    print(REPORT[-1])
    assert size < SIZE_LIMIT_BYTES, REPORT[-1]
