"""Errors raised by the local services.

LocalStackError
├── MissingToolError    a program the stack needs is not installed (Java, Maven, PostgreSQL)
├── DownloadError       the Kafka jars could not be fetched from Maven Central
└── ServiceStartError   a service did not come up; names it and where its log is
"""

from __future__ import annotations

from pathlib import Path


class LocalStackError(Exception):
    """Root of every error this package raises."""


class MissingToolError(LocalStackError):
    """A program the stack needs is not installed."""


class DownloadError(LocalStackError):
    """Fetching the Kafka jars failed."""


class ServiceStartError(LocalStackError):
    """A service did not start or did not answer in time."""

    def __init__(self, component: str, reason: str, log_path: Path, log_tail: str = "") -> None:
        self.component = component
        self.reason = reason
        self.log_path = log_path
        self.log_tail = log_tail
        super().__init__(f"{component} did not start: {reason}. Its log is {log_path}.")
