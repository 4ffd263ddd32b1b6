"""The fault suite: every test adds one `FAULT ...` line, listed again at the end of the run."""

from __future__ import annotations

import pytest

from tests.integration.faults.harness import REPORTED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORTED:
        terminalreporter.section("fault recovery")
        for line in REPORTED:
            terminalreporter.write_line(line)
