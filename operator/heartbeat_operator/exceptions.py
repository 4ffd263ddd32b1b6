"""Exceptions raised by the operator.

Every exception the package raises on purpose derives from ``OperatorError``::

    OperatorError
    ├── OperatorSettingsError  an OPERATOR_* setting is wrong; the operator cannot start
    ├── InvalidSpecError       a spec the schema let through but that cannot be run as
    │                          written; reported in the Ready condition, never retried
    └── KubeError              the API server refused or did not answer; retried later

``InvalidSpecError`` carries the CamelCase ``reason`` the condition shows.
"""

from __future__ import annotations


class OperatorError(Exception):
    """Root of every exception raised by the operator package."""


class OperatorSettingsError(OperatorError):
    """One or more OPERATOR_* settings are invalid; the message names each."""


class InvalidSpecError(OperatorError):
    """The spec cannot be honoured; ``reason`` is the condition's reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class KubeError(OperatorError):
    """An API call failed in a way that a later attempt can fix (conflict, 5xx, timeout)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
