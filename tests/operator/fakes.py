"""An in-memory API server for the reconciler: simulations, StatefulSets, pods, Events."""

from __future__ import annotations

import copy
import threading
from typing import Any

from heartbeat_operator.exceptions import KubeError

Body = dict[str, Any]


class FakeKube:
    """Just enough of ``heartbeat_operator.kube.Kube``, with a hand-cranked controller."""

    def __init__(self) -> None:
        self.simulations: dict[tuple[str, str], Body] = {}
        self.statefulsets: dict[tuple[str, str], Body] = {}
        self.events: list[tuple[str, str, str]] = []
        self.writes: list[str] = []
        self.failing: str | None = None
        self._failure: tuple[int, str] = (503, "")
        # Until ``gate`` (when there is one) is set, reads of a StatefulSet wait for it;
        # ``most_reading`` is the most reads that were ever under way at once.
        self.gate: threading.Event | None = None
        self.waiting = threading.Event()
        self.most_reading = 0
        self._reading = 0
        self._count = threading.Lock()
        self.conflicts = 0
        self._uids = 0
        # Pods that exist without being ready, by name, with the status the kubelet reports.
        self.unready: dict[str, Body] = {}

    def _fail(self, call: str) -> None:
        if self.failing == call:
            raise KubeError.of(call, self._failure[0], "", self._failure[1])

    def fail(self, call: str, status: int = 503, message: str = "") -> None:
        """Make ``call`` fail as the API server would, with ``status`` and its message."""
        self.failing = call
        self._failure = (status, message)

    # --- simulations -------------------------------------------------------------------

    def apply(self, name: str, spec: dict[str, Any], namespace: str = "wards") -> Body:
        """Create the simulation, or change its spec (bumping the generation)."""
        key = (namespace, name)
        if key in self.simulations:
            body = self.simulations[key]
            body["spec"] = spec
            body["metadata"]["generation"] += 1
            return body
        self._uids += 1
        body = {
            "apiVersion": "heartbeat.dev/v1alpha1",
            "kind": "HeartbeatSimulation",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{self._uids}",
                "generation": 1,
            },
            "spec": spec,
        }
        self.simulations[key] = body
        return body

    def status(self, name: str, namespace: str = "wards") -> Body:
        return dict(self.simulations[(namespace, name)].get("status") or {})

    def condition(self, name: str, kind: str) -> tuple[str, str]:
        (found,) = [c for c in self.status(name)["conditions"] if c["type"] == kind]
        return found["status"], found["reason"]

    def _hold(self) -> None:
        with self._count:
            self._reading += 1
            self.most_reading = max(self.most_reading, self._reading)
        try:
            if self.gate is not None:
                self.waiting.set()
                self.gate.wait(10)
        finally:
            with self._count:
                self._reading -= 1

    def get_simulation(self, namespace: str, name: str) -> Body | None:
        self._fail("get_simulation")
        found = self.simulations.get((namespace, name))
        return copy.deepcopy(found) if found else None

    def list_simulations(self, namespaces: tuple[str, ...]) -> list[Body]:
        self._fail("list_simulations")
        return [
            copy.deepcopy(b)
            for (namespace, _), b in sorted(self.simulations.items())
            if not namespaces or namespace in namespaces
        ]

    def patch_simulation_status(self, namespace: str, name: str, status: Body) -> None:
        self._fail("patch_simulation_status")
        self.writes.append(f"status {name}")
        self.simulations[(namespace, name)]["status"] = copy.deepcopy(status)

    # --- StatefulSets and pods ----------------------------------------------------------

    def get_statefulset(self, namespace: str, name: str) -> Body | None:
        self._fail("get_statefulset")
        self._hold()
        found = self.statefulsets.get((namespace, name))
        return copy.deepcopy(found) if found else None

    def create_statefulset(self, manifest: Body) -> Body:
        self._fail("create_statefulset")
        meta = manifest["metadata"]
        self.writes.append(f"create {meta['name']}")
        stored = copy.deepcopy(manifest)
        stored["metadata"].update(resourceVersion="1", generation=1)
        stored["status"] = {}
        self.statefulsets[(meta["namespace"], meta["name"])] = stored
        return copy.deepcopy(stored)

    def replace_statefulset(self, manifest: Body, resource_version: str) -> Body:
        self._fail("replace_statefulset")
        meta = manifest["metadata"]
        key = (meta["namespace"], meta["name"])
        current = self.statefulsets[key]
        if self.conflicts:
            self.conflicts -= 1
            current["metadata"]["resourceVersion"] += "0"  # the controller wrote meanwhile
        if current["metadata"]["resourceVersion"] != resource_version:
            raise KubeError("replace: 409 Conflict", 409)
        self.writes.append(f"replace {meta['name']}")
        stored = copy.deepcopy(manifest)
        stored["metadata"].update(
            resourceVersion=str(int(resource_version) + 1),
            generation=current["metadata"]["generation"] + 1,
        )
        stored["status"] = current.get("status", {})
        self.statefulsets[key] = stored
        return copy.deepcopy(stored)

    def edit_statefulset(self, name: str, namespace: str = "wards", **spec: Any) -> None:
        """Someone else's edit (kubectl scale, kubectl edit)."""
        current = self.statefulsets[(namespace, name)]
        current["spec"].update(spec)
        current["metadata"]["resourceVersion"] = str(
            int(current["metadata"]["resourceVersion"]) + 1
        )
        current["metadata"]["generation"] += 1

    def settle(self, name: str, namespace: str = "wards") -> None:
        """The StatefulSet controller catches up: every pod of the spec exists and is ready."""
        current = self.statefulsets[(namespace, name)]
        replicas = current["spec"]["replicas"]
        current["status"] = {
            "observedGeneration": current["metadata"]["generation"],
            "replicas": replicas,
            "readyReplicas": replicas,
            "updatedReplicas": replicas,
            "currentRevision": "r",
            "updateRevision": "r",
        }

    def list_pods(self, namespace: str, selector: str) -> list[Body]:
        self._fail("list_pods")
        pods = []
        for (ns, name), sts in self.statefulsets.items():
            if ns != namespace or f"app.kubernetes.io/instance={name}" not in selector:
                continue
            for ordinal in range(int(sts.get("status", {}).get("readyReplicas") or 0)):
                pods.append(
                    {
                        "metadata": {"name": f"{name}-{ordinal}"},
                        "spec": copy.deepcopy(sts["spec"]["template"]["spec"]),
                        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
                    }
                )
            pods += [
                {
                    "metadata": {"name": pod},
                    "spec": copy.deepcopy(sts["spec"]["template"]["spec"]),
                    "status": copy.deepcopy(status),
                }
                for pod, status in self.unready.items()
                if pod.rsplit("-", 1)[0] == name
            ]
        return pods

    # --- Events -------------------------------------------------------------------------

    def post_event(self, involved: Body, kind: str, reason: str, message: str) -> None:
        self.events.append((kind, reason, message))

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.events]
