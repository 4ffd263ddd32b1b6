"""One reconciliation: read the world, make the StatefulSet match the spec, report.

Level-based: whatever triggered it (a change of the simulation, of its StatefulSet, or
the periodic resync), a reconciliation reads the simulation, its StatefulSet and pods
afresh, writes the StatefulSet only where it differs from the spec, and patches the
status only where it changed. Running it twice in a row does nothing the second time.
One reconciliation per simulation runs at a time, whoever asks (kopf's handlers, the
resync loop): a request for a simulation already being reconciled returns at once, and
the running reconciliation goes round once more to see whatever changed meanwhile. So no
worker thread ever waits for another's simulation.

Events go through kopf (``events``); the StatefulSet is adopted with kopf too
(``kopf.append_owner_reference``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from heartbeat_operator import manifests
from heartbeat_operator.events import KopfEvents
from heartbeat_operator.exceptions import InvalidSpecError, KubeError, KubeRejectedError
from heartbeat_operator.kube import Body, Kube
from heartbeat_operator.manifests import GeneratorConfig, SimulationRef
from heartbeat_operator.metrics import OperatorMetrics
from heartbeat_operator.spec import KIND, Problem, SimulationSpec, check_spec, parse_spec
from heartbeat_operator.status import (
    PAUSED,
    READY,
    Condition,
    Workload,
    assess,
    build_status,
    changed_conditions,
    merge_conditions,
    observe,
)

logger = logging.getLogger(__name__)

NOT_OWNED = "StatefulSetNotOwned"
REJECTED = "StatefulSetRejected"
# Ready reasons that are expected steps, not something for a person to look at; the
# Created and Updated Events already say that a rollout starts.
ROUTINE = frozenset({"Creating", "RollingOut", "Paused"})

# A write refused because the object changed since it was read (409) is normal: the
# StatefulSet controller updates its status all the time. Read again and retry at once.
CONFLICT_ATTEMPTS = 3
SKIPPED = "skipped"

Key = tuple[str, str]
# An Event about a resource: (its body, "Normal" or "Warning", reason, message).
PostEvent = Callable[[Mapping[str, Any], str, str, str], None]


def _kopf_body(body: Mapping[str, Any]) -> kopf.Body:
    return kopf.Body(cast(kopf.RawBody, dict(body)))


def desired_statefulset(
    body: Mapping[str, Any], spec: SimulationSpec, generator: GeneratorConfig
) -> Body:
    """The StatefulSet the simulation ``body`` asks for, owned by it (kopf's controller
    reference with ``blockOwnerDeletion``), so that deleting it collects the pods."""
    desired = manifests.statefulset(SimulationRef.of(body), spec, generator)
    kopf.append_owner_reference(desired, owner=_kopf_body(body))
    return desired


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        generator: GeneratorConfig,
        metrics: OperatorMetrics,
        namespaces: tuple[str, ...] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        events: PostEvent | None = None,
    ) -> None:
        self._kube = kube
        self._events = events or KopfEvents()
        self._generator = generator
        self._metrics = metrics
        self._namespaces = namespaces
        self._clock = clock
        self._guard = threading.Lock()
        self._running: set[Key] = set()
        self._again: set[Key] = set()
        self._known: set[Key] = set()

    def reconcile(self, namespace: str, name: str, trigger: str) -> str:
        """Bring one simulation to its spec; returns its result, raises ``KubeError``.

        ok; invalid: a spec problem is reported; error: the API server refused the
        StatefulSet for good, also reported in the status; skipped: it is being reconciled
        right now, and that reconciliation runs once more instead.
        """
        key = (namespace, name)
        with self._guard:
            if key in self._running:
                self._again.add(key)
                return SKIPPED
            self._running.add(key)
        try:
            while True:
                result = self._attempts(namespace, name, trigger)
                with self._guard:  # checked and released at once: no request falls between
                    if key not in self._again:
                        self._running.discard(key)
                        return result
                    self._again.discard(key)
                trigger = "a request that came meanwhile"
        except BaseException:  # retried by kopf or the resync, with any request it skipped
            with self._guard:
                self._running.discard(key)
                self._again.discard(key)
            raise

    def _attempts(self, namespace: str, name: str, trigger: str) -> str:
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                result = self._reconcile(namespace, name, trigger)
                break
            except KubeError as exc:
                if exc.status == 409 and attempt < CONFLICT_ATTEMPTS:
                    continue  # the StatefulSet moved meanwhile: read it again
                self._metrics.reconciles.labels("error").inc()
                raise
        self._metrics.reconciles.labels(result).inc()
        return result

    def reconcile_all(self) -> int:
        """Reconcile every served simulation; forget the ones that are gone. Returns failures."""
        listed = self._kube.list_simulations(self._namespaces)
        present = {(b["metadata"]["namespace"], b["metadata"]["name"]) for b in listed}
        for namespace, name in self._known_keys() - present:
            self._forget(namespace, name)
        failures = 0
        for namespace, name in sorted(present):
            try:
                self.reconcile(namespace, name, trigger="resync")
            except KubeError as exc:
                failures += 1
                logger.warning("resync of %s/%s failed, retried later: %s", namespace, name, exc)
        return failures

    def _known_keys(self) -> set[Key]:
        with self._guard:
            return set(self._known)

    def _remember(self, key: Key) -> None:
        with self._guard:
            self._known.add(key)
            self._metrics.simulations.set(len(self._known))

    def _forget(self, namespace: str, name: str) -> None:
        with self._guard:
            self._known.discard((namespace, name))
            self._metrics.simulations.set(len(self._known))
        self._metrics.forget(namespace, name)

    def _reconcile(self, namespace: str, name: str, trigger: str) -> str:
        body = self._kube.get_simulation(namespace, name)
        if body is None:
            self._forget(namespace, name)
            return "ok"
        self._remember((namespace, name))
        sim = SimulationRef.of(body)
        previous: Mapping[str, Any] = body.get("status") or {}
        spec, problem = _validate(body)

        actual = self._kube.get_statefulset(namespace, name)
        if actual is not None and not manifests.is_controlled_by(actual, sim):
            problem = Problem(
                NOT_OWNED,
                f"a StatefulSet named {name} exists and is not controlled by this "
                f"{KIND}; delete it or rename the {KIND}",
                blocking=True,
            )
            actual = None
        # Being deleted: the garbage collector is taking the StatefulSet away (first, with
        # foreground deletion). Creating or repairing it now would fight it and report false
        # drift, and a status written now would describe an object about to disappear.
        deleting = bool(body["metadata"].get("deletionTimestamp"))
        rejected = False
        if spec is not None and not (problem and problem.blocking) and not deleting:
            desired = desired_statefulset(body, spec, self._generator)
            try:
                actual = self._converge(body, desired, actual, previous, trigger)
            except KubeRejectedError as exc:
                # The same write would be refused again: say why in the status rather than
                # retry it in a loop. The resync tries again, in case the cause was fixed.
                rejected = True
                problem = Problem(
                    REJECTED,
                    f"the API server refused StatefulSet {name}: {exc.detail or exc}",
                    blocking=True,
                )

        pods = self._kube.list_pods(namespace, manifests.selector_string(name)) if actual else []
        workload = observe(actual, pods, self._clock())
        conditions = previous.get("conditions") or []
        if not deleting:
            conditions = self._report(body, previous, assess(spec, problem, workload), workload)
        # What the StatefulSet asks for, not the spec: with a spec problem, the pods of the
        # last good spec go on running; without a StatefulSet of its own, it has none.
        self._metrics.observe(
            namespace,
            name,
            desired=workload.desired,
            ready=workload.ready,
            conditions={c.get("type"): c.get("status") == "True" for c in conditions},
        )
        return "error" if rejected else "ok" if problem is None else "invalid"

    def _report(
        self,
        body: Body,
        previous: Mapping[str, Any],
        assessed: list[Condition],
        workload: Workload,
    ) -> list[dict[str, Any]]:
        """Patch the status where it changed, post Events for transitions; the conditions."""
        meta = body["metadata"]
        generation = int(meta.get("generation") or 0)
        conditions = merge_conditions(
            previous.get("conditions") or [], assessed, generation, self._clock()
        )
        status = build_status(
            generation=generation,
            workload=workload,
            conditions=conditions,
            selector=manifests.selector_string(meta["name"]),
        )
        if any(previous.get(key) != value for key, value in status.items()):
            self._kube.patch_simulation_status(meta["namespace"], meta["name"], status)
            self._announce(body, previous.get("conditions") or [], conditions)
        return conditions

    def _converge(
        self,
        body: Body,
        desired: Body,
        actual: Body | None,
        previous: Mapping[str, Any],
        trigger: str,
    ) -> Body:
        """Create or replace the StatefulSet where it differs from ``desired``."""
        name, replicas = desired["metadata"]["name"], desired["spec"]["replicas"]
        if actual is None:
            created = self._kube.create_statefulset(desired)
            if "observedGeneration" in previous:
                self._drift(body, f"StatefulSet {name} was deleted; created it again")
            else:
                logger.info("created StatefulSet %s with %d replicas", name, replicas)
                self._event(body, "Normal", "Created", f"created StatefulSet {name}")
            return created
        differences = manifests.drift(desired, actual)
        if not differences:
            return actual
        replaced = self._kube.replace_statefulset(desired, actual["metadata"]["resourceVersion"])
        if manifests.changed_spec(desired, actual):
            was = actual.get("spec", {}).get("replicas")
            message = f"updated StatefulSet {name}: {was} -> {replicas} replicas"
            if any(d.startswith("spec.template") for d in differences):
                message += ", rolling out a new pod template"
            logger.info("%s (%s)", message, trigger)
            self._event(body, "Normal", "Updated", message)
        else:
            shown = ", ".join(differences[:5]) + (" ..." if len(differences) > 5 else "")
            self._drift(body, f"StatefulSet {name} had been changed ({shown}); put it back")
        return replaced

    def _drift(self, body: Body, message: str) -> None:
        self._metrics.drift_repaired.inc()
        logger.warning(
            "%s/%s: %s", body["metadata"]["namespace"], body["metadata"]["name"], message
        )
        self._event(body, "Warning", "DriftRepaired", message)

    def _announce(
        self, body: Body, previous: list[Mapping[str, Any]], current: list[dict[str, Any]]
    ) -> None:
        """Events for the Ready and Paused transitions people care about."""
        for condition in changed_conditions(previous, current):
            reason, message = condition["reason"], condition["message"]
            if condition["type"] == READY and condition["status"] == "True":
                self._event(body, "Normal", reason, message)
            elif condition["type"] == READY and reason not in ROUTINE:
                meta = body["metadata"]
                logger.warning("%s/%s: %s: %s", meta["namespace"], meta["name"], reason, message)
                self._event(body, "Warning", reason, message)
            elif condition["type"] == PAUSED and condition["status"] == "True":
                self._event(body, "Normal", "Paused", message)
            elif condition["type"] == PAUSED and any(c.get("type") == PAUSED for c in previous):
                self._event(body, "Normal", "Resumed", "spec.paused is false again")

    def _event(self, body: Body, kind: str, reason: str, message: str) -> None:
        self._events(body, kind, reason, message)


def _validate(body: Mapping[str, Any]) -> tuple[SimulationSpec | None, Problem | None]:
    try:
        spec = parse_spec(body.get("spec"))
    except InvalidSpecError as exc:
        return None, Problem(exc.reason, exc.message, blocking=True)
    return spec, check_spec(spec)
