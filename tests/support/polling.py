"""Waiting in a test for something that happens in another process."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T],
    timeout: float,
    what: str,
    interval: float = 0.2,
    *,
    until: Callable[[T], object] = bool,
    retrying: tuple[type[Exception], ...] = (),
) -> T:
    """The first result of `condition()` that `until` holds of (by default: a truthy one).

    `condition` is called every `interval` seconds; an exception of a type in `retrying`
    counts as "not yet", any other goes up at once. After `timeout` seconds the wait fails
    with an AssertionError naming `what` and the last result (or exception), so a failure
    says how far things got.
    """
    deadline = time.monotonic() + timeout
    while True:
        last: object
        try:
            result = condition()
        except retrying as exc:
            last = exc
        else:
            if until(result):
                return result
            last = result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)
