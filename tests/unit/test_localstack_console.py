"""How the local-services command lines report a failure: one error line, then the log's tail."""

from __future__ import annotations

from pathlib import Path

import pytest

from heartbeat_localstack.cluster.exceptions import BuildError
from heartbeat_localstack.console import report_error
from heartbeat_localstack.exceptions import LocalStackError


def test_a_failed_build_is_reported_with_the_tail_of_its_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    exc = BuildError("kubelet", Path("/cache/logs/kubelet.log"), "undefined: foo")
    assert report_error(exc) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: building kubelet failed; its log is /cache/logs/kubelet.log",
        "--- last lines of /cache/logs/kubelet.log ---",
        "undefined: foo",
    ]


def test_a_message_replaces_the_errors_own_words(capsys: pytest.CaptureFixture[str]) -> None:
    report_error(BuildError("kind", Path("/l/kind.log")), "cannot build kind 0.33.0")
    assert capsys.readouterr().err == "error: cannot build kind 0.33.0\n"


def test_an_error_without_a_log_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert report_error(LocalStackError("docker is not installed")) == 1
    assert capsys.readouterr().err == "error: docker is not installed\n"
