"""kubectl and helm against the session's cluster, and a watch that records what happened.

``Kube`` is ``tests.support.kube.Kubectl`` (the cluster's own kubectl and helm) with the
chart's release and CRDs. ``Watch`` records every change to one collection from a known
resourceVersion, so an object that lives for a second, such as a hook Job deleted once it
succeeded, is still seen.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from tests.chart.helm import CHART, RELEASE
from tests.support.kube import Kubectl, Object

# `helm --wait` gives up after this; kwok makes pods Ready within seconds.
WAIT = "90s"
# Every object of the release carries this label (pods and ReplicaSets through their template).
INSTANCE = f"app.kubernetes.io/instance={RELEASE}"

T = TypeVar("T")


@dataclass(frozen=True)
class Kube(Kubectl):
    """`Kubectl` on the whole cluster, with the chart's Helm release and CRDs."""

    def apply_crds(self, crds: Iterable[Object]) -> None:
        """Create or update CRDs and wait until their kinds are served."""
        crds = list(crds)
        # Server-side and forced: Helm may have created them already under its own field manager.
        self.apply(crds, "--server-side", "--force-conflicts")
        names = [f"crd/{crd['metadata']['name']}" for crd in crds]
        self.run("wait", "--for=condition=Established", "--timeout=60s", *names)

    def install(self, namespace: str, *flags: str, wait: bool = True) -> str:
        """``helm install`` of the chart as release ``heartbeat`` into `namespace`."""
        waiting = ("--wait", "--timeout", WAIT) if wait else ()
        return self.helm_ok("install", RELEASE, str(CHART), "-n", namespace, *waiting, *flags)

    def watch(self, collection: str, log: Path) -> Watch:
        return Watch(self, collection, log)


class Watch:
    """Every ADDED/MODIFIED/DELETED event of `collection` (an API path) while in the block.

    The watch starts from the resourceVersion of a listing taken on entry, so no event after
    that listing is missed however late the watch connects.
    """

    # The server ends the watch by itself after this, should the process outlive the test.
    SERVER_TIMEOUT_SECONDS = 300

    def __init__(self, kube: Kube, collection: str, log: Path) -> None:
        self._kube = kube
        self._collection = collection
        self._log = log
        self._errors = log.with_suffix(".stderr")
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Watch:
        listing = json.loads(self._kube.run("get", "--raw", self._collection).stdout)
        since = listing["metadata"]["resourceVersion"]
        query = f"watch=1&resourceVersion={since}&timeoutSeconds={self.SERVER_TIMEOUT_SECONDS}"
        cluster = self._kube.cluster
        argv = [str(cluster.kubectl), "--kubeconfig", str(cluster.kubeconfig), "get", "--raw"]
        with self._log.open("wb") as out, self._errors.open("wb") as err:
            self._process = subprocess.Popen(
                [*argv, f"{self._collection}?{query}"], stdout=out, stderr=err
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)

    def events(self) -> list[Object]:
        """The events so far, oldest first (a line still being written is left out)."""
        text = self._log.read_text()
        complete = text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def wait_for(self, done: Callable[[list[Object]], bool], seconds: float = 30) -> list[Object]:
        """The events once `done(events)` holds; fails with what was seen after `seconds`."""
        deadline = time.monotonic() + seconds
        while True:
            events = self.events()
            if done(events):
                return events
            if time.monotonic() > deadline:
                seen = [(e["type"], e["object"]["metadata"].get("name")) for e in events]
                raise AssertionError(
                    f"watch of {self._collection} never saw what it waited for; saw {seen}; "
                    f"kubectl said: {self._errors.read_text().strip()!r}"
                )
            time.sleep(0.2)


def events_of(events: Iterable[Object], name: str, *types: str) -> list[Object]:
    """The events of the object called `name` whose type is one of `types` (all when none)."""
    return [
        e
        for e in events
        if e["object"]["metadata"]["name"] == name and (not types or e["type"] in types)
    ]


def timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value)
