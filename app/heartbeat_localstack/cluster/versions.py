"""The pinned versions of every control-plane binary, and where their build is cached.

Kubernetes and the published ``k8s.io/*`` staging modules move together (v1.34.N pairs with
v0.34.N). Kubernetes 1.34 pairs with etcd 3.6. kwok v0.7 talks to the API server with
client-go 0.33, within the supported skew of a 1.34 server. Helm 3.19 is built against
client-go 0.34, and its default ``.Capabilities.KubeVersion`` is set to 1.34 at link time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Versions:
    """One consistent set of versions; the cache folder is keyed by `kubernetes`."""

    kubernetes: str = "1.34.10"
    etcd: str = "3.6.16"
    kwok: str = "0.7.0"
    helm: str = "3.19.5"
    coredns: str = "1.12.4"
    crictl: str = "1.34.0"

    @property
    def kube_minor(self) -> str:
        return self.kubernetes.split(".")[1]

    @property
    def staging(self) -> str:
        """The version of the published ``k8s.io/*`` staging modules for this release."""
        _, minor, patch = self.kubernetes.split(".")
        return f"0.{minor}.{patch}"

    def as_dict(self) -> dict[str, str]:
        return {
            "kubernetes": self.kubernetes,
            "etcd": self.etcd,
            "kwok": self.kwok,
            "helm": self.helm,
        }

    def node_dict(self) -> dict[str, str]:
        """The versions a real node is built from (kubelet and kube-proxy: `kubernetes`)."""
        return {"kubernetes": self.kubernetes, "coredns": self.coredns, "crictl": self.crictl}


PINNED = Versions()

#: Every binary the cluster needs, in build order.
BINARIES = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "etcd",
    "kwok",
    "helm",
)


#: What a real node adds: built from the same Kubernetes module, plus CoreDNS, crictl and
#: the pause binary (compiled from Kubernetes' own pause.c).
NODE_BINARIES = ("kubelet", "kube-proxy", "coredns", "crictl", "pause")


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """``$HEARTBEAT_CACHE_DIR``, else ``$XDG_CACHE_HOME/heartbeat``, else ``~/.cache/heartbeat``."""
    env = os.environ if environ is None else environ
    if env.get("HEARTBEAT_CACHE_DIR"):
        return Path(env["HEARTBEAT_CACHE_DIR"]).expanduser()
    xdg = env.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(xdg).expanduser() / "heartbeat"


def release_dir(versions: Versions = PINNED, root: Path | None = None) -> Path:
    """The cache folder of one Kubernetes release: ``<root>/k8s-<version>``."""
    return (root or cache_root()) / f"k8s-{versions.kubernetes}"
