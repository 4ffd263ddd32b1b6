"""Retry an action that fails with ``TransientError``: capped exponential backoff with jitter.

Retries never give up on their own; they stop only when the process is asked
to stop, and then re-raise the last error so the caller can abandon its work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    wait_exponential,
    wait_random,
)

from heartbeat.errors import TransientError

T = TypeVar("T")

# Called before each wait with the error, the attempt number and the delay.
RetryHook = Callable[[BaseException, int, float], None]


def retry_transient(
    action: Callable[[], T],
    *,
    initial: float,
    maximum: float,
    stopping: threading.Event,
    on_retry: RetryHook,
    sleep: Callable[[float], None] | None = None,
) -> T:
    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        if error is not None:
            on_retry(error, state.attempt_number, delay)

    retrying = Retrying(
        retry=retry_if_exception_type(TransientError),
        wait=wait_exponential(multiplier=initial, max=maximum) + wait_random(0, initial),
        stop=lambda _: stopping.is_set(),
        sleep=sleep or (lambda seconds: _wait(stopping, seconds)),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(action)


def _wait(stopping: threading.Event, seconds: float) -> None:
    stopping.wait(seconds)
