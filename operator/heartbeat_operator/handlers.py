"""The kopf handlers: each a small decorated function that hands over to ``Reconciler``.

- create, update and resume of a HeartbeatSimulation reconcile it at once;
- a change of a StatefulSet the operator manages (its status moving during a rollout,
  someone editing or deleting it) reconciles its owner, so status and drift repair
  follow within seconds;
- a resync loop, started with the operator, reconciles every simulation every
  ``OPERATOR_RESYNC_INTERVAL_SECONDS`` whatever the events said (level-based).

Not ``@kopf.timer``: kopf puts a finalizer on every resource a timer watches, so deleting
a simulation would hang whenever the operator is down. Nothing here needs a finalizer:
ownerReferences let Kubernetes delete the StatefulSet with its simulation.

Handlers are sync (the Kubernetes client blocks); kopf runs them in its thread pool.
What they share for one run of the operator is a ``Runtime``, kept in kopf's ``memo``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from heartbeat.server import Health
from heartbeat_operator.events import KopfEvents
from heartbeat_operator.exceptions import KubeError, OperatorError
from heartbeat_operator.kube import Kube
from heartbeat_operator.manifests import MANAGER
from heartbeat_operator.reconcile import Reconciler
from heartbeat_operator.spec import GROUP, KIND, PLURAL, VERSION

logger = logging.getLogger(__name__)

RETRY_DELAY_SECONDS = 5.0
TICK_SECONDS = 5.0


@dataclass
class Runtime:
    """The client, reconciler, health and Events of one run, and the tasks the start-up began."""

    kube: Kube
    reconciler: Reconciler
    health: Health
    interval: float
    events: KopfEvents = field(default_factory=KopfEvents)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def of(cls, memo: Any) -> Runtime:
        runtime = getattr(memo, "runtime", None)
        if not isinstance(runtime, cls):
            raise OperatorError("the operator was started without its runtime in kopf's memo")
        return runtime


@kopf.on.startup()
async def start(memo: Any, **_: Any) -> None:
    """Fail fast without the CRD, then start the liveness ticker and the resync loop."""
    runtime = Runtime.of(memo)
    served = await asyncio.to_thread(runtime.kube.simulations_served)
    if not served:
        raise kopf.PermanentError(
            f"the API server does not serve {PLURAL}.{GROUP}/{VERSION}: install the CRD "
            "(charts/heartbeat/crds/) before the operator"
        )
    runtime.tasks.append(asyncio.create_task(_tick(runtime), name="liveness ticker"))
    runtime.tasks.append(asyncio.create_task(_resync(runtime), name="resync"))


@kopf.on.cleanup()
async def stop(memo: Any, **_: Any) -> None:
    runtime = Runtime.of(memo)
    for task in runtime.tasks:
        task.cancel()
    await asyncio.gather(*runtime.tasks, return_exceptions=True)


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
@kopf.on.resume(GROUP, VERSION, PLURAL)
def reconcile_simulation(
    namespace: str | None, name: str, reason: str, memo: Any, **_: Any
) -> None:
    if namespace is None:  # never: the CRD is namespaced
        return
    runtime = Runtime.of(memo)
    runtime.events.lend()
    try:
        runtime.reconciler.reconcile(namespace, name, trigger=reason)
    except KubeError as exc:
        raise kopf.TemporaryError(str(exc), delay=RETRY_DELAY_SECONDS) from exc


@kopf.on.event("apps", "v1", "statefulsets", labels={"app.kubernetes.io/managed-by": MANAGER})
def statefulset_changed(
    body: kopf.Body, type: str, namespace: str | None, memo: Any, **_: Any
) -> None:
    owner = _owner(body.get("metadata", {}))
    if owner is None or namespace is None:
        return
    runtime = Runtime.of(memo)
    runtime.events.lend()
    try:
        runtime.reconciler.reconcile(namespace, owner, trigger=f"statefulset {type or 'listed'}")
    except KubeError as exc:  # the resync loop tries again
        logger.warning("reconciling %s/%s failed: %s", namespace, owner, exc)


def _owner(meta: Mapping[str, Any]) -> str | None:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == KIND:
            return str(ref["name"])
    return None


async def _tick(runtime: Runtime) -> None:
    """/healthz stays 200 while the operator's event loop keeps turning."""
    while True:
        runtime.health.tick()
        await asyncio.sleep(TICK_SECONDS)


async def _resync(runtime: Runtime) -> None:
    """Reconcile everything every interval; /readyz follows whether the API answers."""
    while True:
        try:
            failures = await asyncio.to_thread(runtime.reconciler.reconcile_all)
        except KubeError as exc:
            runtime.health.set("kubernetes", False, str(exc))
            logger.warning("resync failed, retried in %.0fs: %s", runtime.interval, exc)
        except Exception:  # the loop must outlive any bug in one round
            runtime.health.set("kubernetes", False, "resync failed")
            logger.exception("resync failed")
        else:
            runtime.health.set("kubernetes", True, "" if not failures else f"{failures} failed")
        await asyncio.sleep(runtime.interval)
