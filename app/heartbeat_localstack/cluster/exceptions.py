"""Errors raised by the local Kubernetes control plane.

LocalStackError                 (heartbeat_localstack.exceptions)
└── ClusterError
    ├── NotBuiltError           the binaries are not in the cache; run the build first
    ├── BuildError              a Go build failed; names the component and its log
    ├── ComponentStartError     a component did not come up (also a ServiceStartError)
    └── NodeBusyError           another cluster's real node runs on this machine
"""

from __future__ import annotations

from pathlib import Path

from heartbeat_localstack.exceptions import LocalStackError, ServiceStartError


class ClusterError(LocalStackError):
    """Root of every error this subpackage raises."""


class NotBuiltError(ClusterError):
    """The control-plane binaries have not been built for the pinned versions."""


class BuildError(ClusterError):
    """Building one of the binaries failed."""

    def __init__(self, component: str, log_path: Path, log_tail: str = "") -> None:
        self.component = component
        self.log_path = log_path
        self.log_tail = log_tail
        super().__init__(f"building {component} failed; its log is {log_path}")


class ComponentStartError(ClusterError, ServiceStartError):
    """A control-plane component did not start or did not answer in time."""

    def __init__(self, component: str, reason: str, log_path: Path, log_tail: str = "") -> None:
        ServiceStartError.__init__(self, component, reason, log_path, log_tail)


class NodeBusyError(ClusterError):
    """A real node uses host-wide things (a bridge, iptables chains, an address): one at a time."""

    def __init__(self, owner: Path) -> None:
        self.owner = owner
        super().__init__(
            f"a cluster with a real node already runs from {owner}; stop it first "
            f"(python -m heartbeat_localstack.cluster down --dir {owner})"
        )
