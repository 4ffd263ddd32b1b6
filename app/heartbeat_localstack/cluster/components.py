"""How each control-plane component is run: its command line, its files, the fake nodes.

Pure functions of the state folder layout, the ports and the binaries; `control_plane`
does the starting and waiting. Every component listens on the loopback address only, but
the API server of a cluster with a real node, which listens on `Ports.host` (see
`api_address`) so that pods reach it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .build import Binaries
from .pki import (
    CONTROLLER_MANAGER,
    FRONT_PROXY_CLIENT,
    KUBELET_CLIENT,
    KWOK,
    SCHEDULER,
    Identity,
    Pki,
)

HOST = "127.0.0.1"
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.1/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
# kwok manages the nodes carrying this annotation and no others.
KWOK_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")

#: Start order; they are stopped in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


@dataclass(frozen=True)
class Layout:
    """The files of one running cluster under ``<dir>/cluster`` (an absolute path)."""

    state: Path

    @property
    def pki(self) -> Pki:
        return Pki(self.state / "pki")

    @property
    def etcd_data(self) -> Path:
        return self.state / "etcd-data"

    @property
    def kwok_workdir(self) -> Path:
        return self.state / "kwok"

    @property
    def ports_file(self) -> Path:
        return self.state / "ports.json"

    def log(self, component: str) -> Path:
        return self.state / f"{component}.log"

    def pid(self, component: str) -> Path:
        return self.state / f"{component}.pid"

    def kubeconfig(self, identity: Identity) -> Path:
        return self.state / "kubeconfigs" / f"{identity.name}.kubeconfig"


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int
    #: Where the API server binds and what it advertises (the `kubernetes` Service's endpoint).
    host: str = HOST

    @property
    def server(self) -> str:
        return f"https://{self.host}:{self.apiserver}"


def argv(component: str, binaries: Binaries, layout: Layout, ports: Ports) -> list[str]:
    """The command line of `component`."""
    builders = {
        "etcd": _etcd,
        "kube-apiserver": _apiserver,
        "kube-controller-manager": _controller_manager,
        "kube-scheduler": _scheduler,
        "kwok": _kwok,
    }
    return [str(binaries.path(component)), *builders[component](layout, ports)]


def _etcd(layout: Layout, ports: Ports) -> list[str]:
    client = f"http://{HOST}:{ports.etcd_client}"
    peer = f"http://{HOST}:{ports.etcd_peer}"
    return [
        "--name=heartbeat",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=heartbeat={peer}",
        "--initial-cluster-state=new",
        # A throwaway development cluster: losing the last writes on a power cut is fine.
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def _apiserver(layout: Layout, ports: Ports) -> list[str]:
    pki = layout.pki
    return [
        f"--etcd-servers=http://{HOST}:{ports.etcd_client}",
        f"--bind-address={ports.host}",
        f"--advertise-address={ports.host}",
        f"--secure-port={ports.apiserver}",
        # No --tls-cert-file: the API server makes a self-signed certificate in --cert-dir.
        f"--cert-dir={pki.serving_dir}",
        f"--client-ca-file={pki.client_ca_cert}",
        "--authorization-mode=Node,RBAC",
        # How `kubectl exec` and `logs` reach a real node's kubelet.
        f"--kubelet-client-certificate={pki.cert(KUBELET_CLIENT)}",
        f"--kubelet-client-key={pki.key(KUBELET_CLIENT)}",
        # The node's name resolves nowhere; its InternalIP does.
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki.service_account_pub}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # The front proxy: how the API server authenticates to aggregated API servers.
        f"--requestheader-client-ca-file={pki.front_proxy_ca_cert}",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT.user}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki.cert(FRONT_PROXY_CLIENT)}",
        f"--proxy-client-key-file={pki.key(FRONT_PROXY_CLIENT)}",
        "--allow-privileged=true",
        # The `kubernetes` Service cannot point at a loopback address: with the API server
        # there (kwok nodes, where no pod runs) it is left without an endpoint.
        f"--endpoint-reconciler-type={'none' if ports.host == HOST else 'lease'}",
        "--profiling=false",
    ]


def _serving_component(layout: Layout, identity: Identity, port: int) -> list[str]:
    kubeconfig = layout.kubeconfig(identity)
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={HOST}",
        f"--secure-port={port}",
        f"--cert-dir={layout.state / 'pki' / identity.name}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def _controller_manager(layout: Layout, ports: Ports) -> list[str]:
    pki = layout.pki
    return [
        *_serving_component(layout, CONTROLLER_MANAGER, ports.controller_manager),
        "--controllers=*",
        "--use-service-account-credentials=true",
        # Signs service-account tokens and publishes the CA in every namespace.
        f"--service-account-private-key-file={pki.service_account_key}",
        f"--root-ca-file={pki.serving_cert}",
        # Lets CertificateSigningRequests for client certificates be approved and signed.
        f"--cluster-signing-cert-file={pki.client_ca_cert}",
        f"--cluster-signing-key-file={pki.client_ca_key}",
    ]


def _scheduler(layout: Layout, ports: Ports) -> list[str]:
    return _serving_component(layout, SCHEDULER, ports.scheduler)


def _kwok(layout: Layout, ports: Ports) -> list[str]:
    key, value = KWOK_NODE_ANNOTATION
    return [
        f"--kubeconfig={layout.kubeconfig(KWOK)}",
        f"--manage-nodes-with-annotation-selector={key}={value}",
        # Nodes renew a Lease like a real kubelet instead of rewriting their status.
        "--node-lease-duration-seconds=40",
        f"--cidr={POD_CIDR}",
        f"--node-ip={HOST}",
        f"--server-address={HOST}:{ports.kwok}",
    ]


def kwok_env(layout: Layout) -> dict[str, str]:
    """kwok reads ``~/.kwok/kwok.yaml`` unless its work folder points elsewhere."""
    return {"KWOK_WORKDIR": str(layout.kwok_workdir)}


def fake_node(name: str, kube_version: str) -> dict[str, Any]:
    """A Node that kwok manages: Ready, with room for plenty of pods, no taints."""
    key, value = KWOK_NODE_ANNOTATION
    resources = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {key: value, "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                "type": "kwok",
            },
        },
        "status": {
            "allocatable": resources,
            "capacity": resources,
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": f"v{kube_version}",
                "containerRuntimeVersion": "kwok",
                "osImage": "kwok",
                "kernelVersion": "kwok",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        },
    }
