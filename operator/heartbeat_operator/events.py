"""Kubernetes Events about simulations, posted by kopf (``kopf.event``).

kopf queues an Event and posts it in the background, retrying, and logs a failed post
instead of raising. It can do so only from within its own handling of a resource: its
posting queue is reached through context variables that kopf sets there. The resync loop
runs outside any handler, so every handler lends its context (``lend``); an Event made
outside a handler is posted in the context lent last, or, before any handler has run,
kept until the first one does (kopf resumes every existing simulation at start, so that
is a matter of seconds).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any, cast

import kopf

logger = logging.getLogger(__name__)

KEPT = 100  # Events waiting for kopf's first handler; the oldest go first


class KopfEvents:
    """``events(body, "Normal" or "Warning", reason, message)``: an Event about ``body``.

    The operator's own actions are posted whatever OPERATOR_POSTING_LEVEL says (the
    level filters log messages only), so this uses ``kopf.event`` with an explicit type.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._context: contextvars.Context | None = None
        self._kept: deque[tuple[kopf.Body, str, str, str]] = deque(maxlen=KEPT)

    def lend(self) -> None:
        """Called by each kopf handler: its context posts what others cannot."""
        context = contextvars.copy_context()
        with self._guard:
            self._context = context
            kept, self._kept = list(self._kept), deque(maxlen=KEPT)
        for event in kept:
            _post(*event)

    def __call__(self, involved: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        body = kopf.Body(cast(kopf.RawBody, dict(involved)))
        try:
            _post(body, kind, reason, message)
            return
        except LookupError:  # outside kopf's handling of a resource
            pass
        with self._guard:
            context = self._context
            if context is None:
                self._kept.append((body, kind, reason, message))
                return
        context.copy().run(_post, body, kind, reason, message)


def _post(body: kopf.Body, kind: str, reason: str, message: str) -> None:
    kopf.event(body, type=kind, reason=reason, message=message)
