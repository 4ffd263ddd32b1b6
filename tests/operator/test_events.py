"""Events reach kopf's posting queue from the handlers and from the resync loop alike."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

import kopf
import pytest

from heartbeat_operator import events
from heartbeat_operator.events import KopfEvents

# Stands for kopf's own context variable: set only while kopf handles a resource.
queue: contextvars.ContextVar[list[tuple[str, str, str, str]]] = contextvars.ContextVar("queue")
BODY = {
    "apiVersion": "heartbeat.dev/v1alpha1",
    "kind": "HeartbeatSimulation",
    "metadata": {"namespace": "wards", "name": "ward", "uid": "u-1"},
}


@pytest.fixture
def posted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str, str]]:
    found: list[tuple[str, str, str, str]] = []

    def post(body: kopf.Body, kind: str, reason: str, message: str) -> None:
        queue.get().append((body["metadata"]["name"], kind, reason, message))  # LookupError

    monkeypatch.setattr(events, "_post", post)
    return found


def in_a_handler(posted: list[Any], work: Any) -> None:
    """Run ``work`` as kopf runs a handler: in a context where its queue is reachable."""
    context = contextvars.copy_context()
    context.run(queue.set, posted)
    context.run(work)


def test_an_event_made_in_a_handler_is_posted_at_once(posted: list[Any]) -> None:
    poster = KopfEvents()
    in_a_handler(posted, lambda: poster(BODY, "Normal", "Created", "created StatefulSet ward"))
    assert posted == [("ward", "Normal", "Created", "created StatefulSet ward")]


def test_an_event_of_the_resync_is_posted_in_the_context_a_handler_lent(posted: list[Any]) -> None:
    poster = KopfEvents()
    in_a_handler(posted, poster.lend)
    resync = threading.Thread(target=poster, args=(BODY, "Warning", "GeneratorCrashLooping", "m"))
    resync.start()
    resync.join()
    assert posted == [("ward", "Warning", "GeneratorCrashLooping", "m")]


def test_events_before_any_handler_are_kept_until_the_first_one(posted: list[Any]) -> None:
    poster = KopfEvents()
    poster(BODY, "Warning", "DriftRepaired", "put it back")
    poster(BODY, "Normal", "AllReplicasReady", "3 of 3")
    assert posted == []
    in_a_handler(posted, poster.lend)
    assert [reason for _, _, reason, _ in posted] == ["DriftRepaired", "AllReplicasReady"]
    in_a_handler(posted, poster.lend)
    assert len(posted) == 2, "posted once"
