"""Exceptions raised by the operator.

Every exception the package raises on purpose derives from ``OperatorError``::

    OperatorError
    ├── OperatorSettingsError  an OPERATOR_* setting is wrong; the operator cannot start
    ├── InvalidSpecError       a spec the schema let through but that cannot be run as
    │                          written; reported in the Ready condition, never retried
    └── KubeError              the API server refused or did not answer; retried later
        └── KubeRejectedError  refused for good (400, 403, 422: invalid, forbidden, denied
                               by an admission webhook); the same request fails again, so
                               the reason goes into the status instead

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


# 4xx answers a later attempt can get past: the object went away or changed meanwhile
# (404, 409), the request timed out (408), the API server asks to slow down (429).
RETRIED_4XX = frozenset({404, 408, 409, 429})


class KubeError(OperatorError):
    """An API call failed in a way that a later attempt can fix (conflict, 5xx, timeout).

    ``status`` is the HTTP status, if an answer came; ``detail`` the API server's own
    message (its Status ``message``), empty if it gave none.
    """

    def __init__(self, message: str, status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail

    @staticmethod
    def of(what: str, status: int, reason: str, detail: str) -> KubeError:
        """The exception for the API server's answer ``status`` to the call ``what``."""
        message = f"{what}: {status} {reason}".rstrip() + (f": {detail}" if detail else "")
        if 400 <= status < 500 and status not in RETRIED_4XX:
            return KubeRejectedError(message, status, detail)
        return KubeError(message, status, detail)


class KubeRejectedError(KubeError):
    """The API server refused the request for good; ``detail`` says why."""
