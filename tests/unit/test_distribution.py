"""What is shipped: the wheel holds the pipeline, the operator and the migrations, nothing else.

The local services (heartbeat_localstack) and the tests stay in the repository; kopf and the
Kubernetes client come with the ``operator`` extra, which only ``heartbeat operator`` needs.
"""

from __future__ import annotations

import email
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
# Where each shipped package lives in the repository, and what the wheel calls it.
SHIPPED = {
    "heartbeat": ROOT / "app" / "heartbeat",
    "heartbeat_operator": ROOT / "operator" / "heartbeat_operator",
}
OPERATOR_EXTRA = {"kopf", "kubernetes"}


def _sources(package: str, folder: Path) -> set[str]:
    return {
        f"{package}/{path.relative_to(folder).as_posix()}"
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The wheel pip builds from this checkout, offline (the backend is in the venv)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", "--wheel-dir", str(out), str(ROOT)],
        check=True, timeout=300,
    )  # fmt: skip
    (built,) = out.glob("heartbeat-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def test_the_wheel_holds_exactly_the_pipeline_the_operator_and_the_migrations(wheel):
    names = set(wheel.namelist())
    dist_info = {name for name in names if name.split("/")[0].endswith(".dist-info")}
    expected = {
        *(name for package, folder in SHIPPED.items() for name in _sources(package, folder)),
        *(f"heartbeat/sql/{path.name}" for path in (ROOT / "sql").glob("*.sql")),
    }
    assert names - dist_info == expected
    assert {name.split("/")[0] for name in names} == {
        *SHIPPED,
        *{n.split("/")[0] for n in dist_info},
    }


def test_the_wheel_ships_no_local_services_and_no_tests(wheel):
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert "heartbeat_localstack" not in tops
    assert "tests" not in tops
    assert not [name for name in wheel.namelist() if "conftest" in name or "/test_" in name]


def _required_with(requirements: list[Requirement], extra: str) -> set[str]:
    """The distributions ``pip install heartbeat[extra]`` brings (``""``: plain install)."""
    return {
        req.name.lower()
        for req in requirements
        if req.marker is None or req.marker.evaluate({"extra": extra})
    }


def test_kopf_and_the_kubernetes_client_come_only_with_the_operator_extra(wheel):
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    message = email.message_from_bytes(wheel.read(metadata))
    requirements = [Requirement(text) for text in message.get_all("Requires-Dist") or []]
    assert "operator" in (message.get_all("Provides-Extra") or [])
    core = _required_with(requirements, "")
    assert core & OPERATOR_EXTRA == set()
    assert "cryptography" not in core
    assert "pytest" not in core
    assert _required_with(requirements, "operator") - core == OPERATOR_EXTRA


# A Python that cannot import kopf or the Kubernetes client, as after `pip install heartbeat`.
WITHOUT_OPERATOR_EXTRA = (
    "import sys\n"
    "for name in ('kopf', 'kubernetes'):\n"
    "    sys.modules[name] = None\n"
    "from heartbeat.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _without_operator_extra(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_OPERATOR_EXTRA, *args],
        cwd=cwd, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "LOG_FORMAT": "text"},
    )  # fmt: skip


def test_heartbeat_operator_without_the_extra_says_so_in_one_line_and_exits_2(tmp_path):
    done = _without_operator_extra("operator", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "heartbeat[operator]" in lines[0]
    assert "kopf is not installed" in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", [["--help"], ["settings"], ["settings", "--markdown"]])
def test_the_pipeline_commands_need_no_operator_extra(tmp_path, command):
    done = _without_operator_extra(*command, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
