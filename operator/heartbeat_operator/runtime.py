"""What the handlers share for one run of the operator, kept in kopf's ``memo``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from heartbeat.server import Health
from heartbeat_operator.exceptions import OperatorError
from heartbeat_operator.kube import Kube
from heartbeat_operator.reconcile import Reconciler


@dataclass
class Runtime:
    kube: Kube
    reconciler: Reconciler
    health: Health
    interval: float
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def of(cls, memo: Any) -> Runtime:
        runtime = getattr(memo, "runtime", None)
        if not isinstance(runtime, cls):
            raise OperatorError("the operator was started without its runtime in kopf's memo")
        return runtime
