"""Fixtures for the tests of the built image and of the pipeline run as containers of it.

They need a Docker engine (``make docker`` starts one). Without one these tests are skipped,
saying so, unless HEARTBEAT_TEST_SERVICES=containers asks for containers: then they fail.
The image under test is $HEARTBEAT_TEST_IMAGE (default heartbeat:dev, what ``make image``
builds); it is built first when the engine does not have it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from heartbeat_localstack.docker import DockerCLI
from heartbeat_localstack.images.build import APP_IMAGE, build_app

# The integration tests' per-test world (topics, group, migrated database), for the pipeline
# run as containers.
from tests.integration.conftest import database, pipeline  # noqa: F401
from tests.services import BACKEND_VARIABLE

ROOT = Path(__file__).resolve().parents[2]
IMAGE_VARIABLE = "HEARTBEAT_TEST_IMAGE"

# Lines for the end of the run: the image's size and make-up, the containers' figures.
REPORT: list[str] = []


@pytest.fixture(scope="session")
def docker_cli() -> DockerCLI:
    cli = DockerCLI()
    if cli.server_version() is None:
        reason = "no Docker engine answers (make docker starts one)"
        if (os.environ.get(BACKEND_VARIABLE) or "").strip().lower() == "containers":
            pytest.fail(f"{BACKEND_VARIABLE}=containers, but {reason}")
        pytest.skip(reason)
    return cli


@pytest.fixture(scope="session")
def app_image(docker_cli: DockerCLI) -> str:
    name = os.environ.get(IMAGE_VARIABLE) or APP_IMAGE
    if docker_cli.image_id(name) is None:
        build_app(docker_cli, ROOT, name)
    return name


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT:
        terminalreporter.section("image and containers")
        for line in REPORT:
            terminalreporter.write_line(line)
