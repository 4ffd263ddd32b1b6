"""The fault suite: every test adds one `FAULT ...` line, listed again at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.faults.harness import REPORTED, RUNNING_FEEDERS


@pytest.fixture(autouse=True)
def _feeders_stop_with_their_test() -> Iterator[None]:
    """A test that fails midway leaves no feeder producing into the next test's time."""
    yield
    while RUNNING_FEEDERS:
        RUNNING_FEEDERS.pop().stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORTED:
        terminalreporter.section("fault recovery")
        for line in REPORTED:
            terminalreporter.write_line(line)
