"""The kopf side: no finalizers, owners found from StatefulSets, a missing CRD stops the start."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import kopf
import pytest

from heartbeat_operator import handlers
from heartbeat_operator.handlers import Runtime


def test_no_handler_makes_kopf_put_a_finalizer_on_simulations() -> None:
    # Timers and daemons (the "spawning" handlers) make kopf add a finalizer, and so do
    # non-optional deletion handlers; either would block deletion while the operator is down.
    registry = kopf.get_default_registry()
    assert registry._spawning.get_all_handlers() == []
    assert not [h for h in registry._changing.get_all_handlers() if h.requires_finalizer]
    ids = {h.id for h in registry._changing.get_all_handlers()}
    assert {i.split("/")[0] for i in ids} == {"reconcile_simulation"}


@pytest.mark.parametrize(
    ("meta", "owner"),
    [
        (
            {"ownerReferences": [{"kind": "HeartbeatSimulation", "name": "w", "controller": True}]},
            "w",
        ),
        ({"ownerReferences": [{"kind": "HeartbeatSimulation", "name": "w"}]}, None),
        ({"ownerReferences": [{"kind": "Deployment", "name": "w", "controller": True}]}, None),
        ({}, None),
    ],
)
def test_a_statefulset_event_reconciles_its_controlling_simulation(
    meta: dict[str, object], owner: str | None
) -> None:
    assert handlers._owner(meta) == owner


def test_the_operator_does_not_start_without_the_crd() -> None:
    kube = SimpleNamespace(simulations_served=lambda: False)
    runtime = Runtime(kube=kube, reconciler=None, health=None, interval=1.0)  # type: ignore[arg-type]
    with pytest.raises(kopf.PermanentError, match="install the CRD"):
        asyncio.run(handlers.start(memo=SimpleNamespace(runtime=runtime)))  # type: ignore[arg-type]
    assert runtime.tasks == []
