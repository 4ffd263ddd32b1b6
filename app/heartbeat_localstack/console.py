"""How the ``python -m heartbeat_localstack...`` command lines log and report failures."""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Callable

from heartbeat_localstack.exceptions import LocalStackError, ServiceStartError


def describe_start_failure(exc: ServiceStartError, retry: str) -> str:
    """One paragraph naming the component, its log and what to run again, then the log's tail."""
    paragraph = (
        f"error: {exc.component} did not start: {exc.reason}. Its log is {exc.log_path}. "
        f"Whatever this command had started was stopped again; fix the cause and run "
        f"'{retry}' again."
    )
    text = textwrap.fill(paragraph, width=100)
    if exc.log_tail:
        text += "\n\nLast lines of the log:\n" + textwrap.indent(exc.log_tail, "  ")
    return text


def run(command: Callable[[], int], retry: str) -> int:
    """Run one command with the package's log format; failures become a message and exit 1."""
    logging.basicConfig(
        level=logging.INFO, format="heartbeat_localstack: %(message)s", stream=sys.stderr
    )
    try:
        return command()
    except ServiceStartError as exc:
        print(describe_start_failure(exc, retry), file=sys.stderr)
        return 1
    except LocalStackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def report_error(exc: LocalStackError, message: str = "") -> int:
    """``error: <message or exc>`` on stderr, then the tail of the log the error names (a build
    or a component that did not start); returns the exit status 1."""
    print(f"error: {message or exc}", file=sys.stderr)
    log_tail = getattr(exc, "log_tail", "")
    if log_tail:
        print(
            f"--- last lines of {getattr(exc, 'log_path', 'its log')} ---\n{log_tail}",
            file=sys.stderr,
        )
    return 1
