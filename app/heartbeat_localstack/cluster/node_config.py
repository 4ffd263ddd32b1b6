"""What a real node is made of: the files and command lines of containerd, the kubelet,
kube-proxy, the CNI bridge and CoreDNS, and how to undo what they leave on the host.

Pure functions of the node's folder layout, the ports and the host's address; `node` does
the starting, the waiting and the cleaning up.

The container runtime is containerd with its CRI plugin (Debian's containerd, the one the
Docker engine runs on), a second instance with a root, a state folder and a socket of its
own. Images reach it from the Docker engine with ``docker save | ctr import``.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_NAME = "heartbeat-node"
POD_SUBNET = "10.244.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
CLUSTER_DNS = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
BRIDGE = "hb-cni0"
CNI_BIN_DIR = "/usr/lib/cni"
CRI_NAMESPACE = "k8s.io"
PAUSE_IMAGE = "heartbeat.local/pause:3.10"
COREDNS_IMAGE = "heartbeat.local/coredns:{version}"
# CoreDNS runs in the host's network (it needs no pod address of its own) on a port no host
# resolver uses; the kube-dns Service maps port 53 onto it.
COREDNS_HOST_PORT = 1053

#: What the kubelet insists on (it refuses to start with protectKernelDefaults otherwise).
KUBELET_SYSCTLS = {
    "vm.overcommit_memory": "1",
    "vm.panic_on_oom": "0",
    "kernel.panic": "10",
    "kernel.panic_on_oops": "1",
}

#: The host's own values of KUBELET_SYSCTLS, recorded by the first real node since boot (the
#: kernel's defaults come back with a reboot, and /run with it) and removed once a node's down
#: has put them back. Per machine, not per state folder: a node abandoned without a down (its
#: test process killed) leaves the kubelet's values set, and the next node, in a new state
#: folder, would record those as the host's and put them "back" on its down.
HOST_SYSCTLS_FILE = Path("/run/heartbeat-real-node-sysctls.json")

#: Start order; stopped in reverse.
NODE_COMPONENTS = ("containerd", "kubelet", "kube-proxy")

CHAIN_PREFIXES = ("KUBE-", "CNI-")


@dataclass(frozen=True)
class NodeLayout:
    """The files of the node under ``<cluster state>/node``; the image store lives apart."""

    state: Path
    containerd_root: Path

    @property
    def containerd_state(self) -> Path:
        return self.state / "containerd-state"

    @property
    def containerd_config(self) -> Path:
        return self.state / "containerd.toml"

    @property
    def socket(self) -> Path:
        return self.state / "containerd.sock"

    @property
    def cni_conf_dir(self) -> Path:
        return self.state / "cni"

    @property
    def kubelet_root(self) -> Path:
        return self.state / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.state / "kubelet.yaml"

    @property
    def kube_proxy_config(self) -> Path:
        return self.state / "kube-proxy.yaml"

    @property
    def sysctls_file(self) -> Path:
        return self.state / "sysctls-before.json"

    def log(self, component: str) -> Path:
        return self.state / f"{component}.log"

    def pid(self, component: str) -> Path:
        return self.state / f"{component}.pid"


@dataclass(frozen=True)
class NodePorts:
    kubelet: int
    kubelet_healthz: int
    kube_proxy_healthz: int
    kube_proxy_metrics: int


def containerd_config(layout: NodeLayout) -> str:
    """containerd 1.6 settings: CRI on, cgroupfs, the local pause image, the CNI bridge.

    ``restrict_oom_score_adj``: root here lacks CAP_SYS_RESOURCE, so no container may ask for
    an oom_score_adj below containerd's own.
    """
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{layout.containerd_root}"
state = "{layout.containerd_state}"

[grpc]
  address = "{layout.socket}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  enable_selinux = false

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{layout.cni_conf_dir}"
"""


def cni_config() -> dict[str, Any]:
    """A bridge with host-local addresses, masquerading out, host ports, and the firewall
    plugin so the Docker engine's FORWARD policy (DROP) lets pod traffic through."""
    return {
        "cniVersion": "1.0.0",
        "name": "heartbeat",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "firewall", "backend": "iptables"},
        ],
    }


def kubelet_config(layout: NodeLayout, ports: NodePorts, node_ip: str, client_ca: Path) -> str:
    """KubeletConfiguration (JSON is YAML): cgroupfs, certificate and webhook auth only."""
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node_ip,
        "port": ports.kubelet,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports.kubelet_healthz,
        "containerRuntimeEndpoint": f"unix://{layout.socket}",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        # The sysctls it needs are set beforehand (and put back on down): it changes none.
        "protectKernelDefaults": True,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(client_ca)},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDNS": [CLUSTER_DNS],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": "/etc/resolv.conf",
        "podCIDR": POD_SUBNET,
        "maxPods": 110,
        "serializeImagePulls": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        # A development machine's disk is often fuller than a server's: evict late.
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "2%",
            "imagefs.available": "2%",
        },
        "imageGCHighThresholdPercent": 99,
        "imageGCLowThresholdPercent": 98,
        "cgroupsPerQOS": True,
        "enforceNodeAllocatable": ["pods"],
        "staticPodPath": "",
        "registerNode": True,
    }
    return json.dumps(config, indent=2) + "\n"


def kubelet_argv(binary: Path, layout: NodeLayout, kubeconfig: Path, node_ip: str) -> list[str]:
    return [
        str(binary),
        f"--config={layout.kubelet_config}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={layout.kubelet_root}",
        f"--cert-dir={layout.kubelet_root / 'pki'}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={node_ip}",
        "--v=1",
    ]


def kube_proxy_config(ports: NodePorts, kubeconfig: Path) -> str:
    """iptables mode; conntrack and route_localnet left as the host has them."""
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": CLUSTER_CIDR,
        "bindAddress": "127.0.0.1",
        "healthzBindAddress": f"127.0.0.1:{ports.kube_proxy_healthz}",
        "metricsBindAddress": f"127.0.0.1:{ports.kube_proxy_metrics}",
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
    }
    return json.dumps(config, indent=2) + "\n"


def containerd_argv(layout: NodeLayout) -> list[str]:
    return ["containerd", f"--config={layout.containerd_config}", "--log-level=warn"]


def coredns_manifests(image: str, apiserver_host: str, apiserver_port: int) -> dict[str, Any]:
    """CoreDNS in the host's network, the kube-dns Service, and the RBAC it reads with."""
    labels = {"k8s-app": "kube-dns"}
    ns = "kube-system"
    corefile = (
        f".:{COREDNS_HOST_PORT} {{\n"
        "    errors\n"
        "    health 127.0.0.1:18080\n"
        "    ready 127.0.0.1:18181\n"
        f"    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n"
        "        pods insecure\n"
        "        fallthrough in-addr.arpa ip6.arpa\n"
        "    }\n"
        "    forward . /etc/resolv.conf\n"
        "    cache 30\n"
        "    loop\n"
        "}\n"
    )
    container = {
        "name": "coredns",
        "image": image,
        "imagePullPolicy": "Never",
        "args": ["-conf", "/etc/coredns/Corefile"],
        # Straight to the API server: it answers before kube-proxy has written the rules
        # that take the `kubernetes` Service there.
        "env": [
            {"name": "KUBERNETES_SERVICE_HOST", "value": apiserver_host},
            {"name": "KUBERNETES_SERVICE_PORT", "value": str(apiserver_port)},
        ],
        "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
        "readinessProbe": {"httpGet": {"host": "127.0.0.1", "path": "/ready", "port": 18181}},
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}},
    }
    items: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "coredns", "namespace": ns},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "heartbeat:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "heartbeat:coredns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "heartbeat:coredns",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": ns}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "coredns", "namespace": ns},
            "data": {"Corefile": corefile},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": ns, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "hostNetwork": True,
                        "dnsPolicy": "Default",
                        "containers": [container],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": ns, "labels": labels},
            "spec": {
                "clusterIP": CLUSTER_DNS,
                "selector": labels,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": COREDNS_HOST_PORT},
                    {
                        "name": "dns-tcp",
                        "port": 53,
                        "protocol": "TCP",
                        "targetPort": COREDNS_HOST_PORT,
                    },
                ],
            },
        },
    ]
    return {"apiVersion": "v1", "kind": "List", "items": items}


def chain_cleanup(iptables_save: str) -> list[list[str]]:
    """``iptables`` argument lists that remove every KUBE-/CNI- chain and the rules using them.

    Rules in other chains that jump into ours are deleted first, then our chains are
    flushed, then deleted (a chain can only go once nothing refers to it).
    """
    deletes: list[list[str]] = []
    flushes: list[list[str]] = []
    removals: list[list[str]] = []
    table = ""
    for line in iptables_save.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":"):
            chain = line[1:].split()[0]
            if chain.startswith(CHAIN_PREFIXES):
                flushes.append(["-t", table, "-F", chain])
                removals.append(["-t", table, "-X", chain])
        elif line.startswith("-A "):
            parts = shlex.split(line)
            chain = parts[1]
            target = _jump_target(parts)
            if not chain.startswith(CHAIN_PREFIXES) and target.startswith(CHAIN_PREFIXES):
                deletes.append(["-t", table, "-D", *parts[1:]])
    return deletes + flushes + removals


def _jump_target(parts: list[str]) -> str:
    for flag in ("-j", "-g"):
        if flag in parts:
            index = parts.index(flag)
            if index + 1 < len(parts):
                return parts[index + 1]
    return ""


def mounts_under(mountinfo: str, roots: tuple[Path, ...]) -> list[str]:
    """Mount points below any of `roots`, deepest first (the order to unmount them in)."""
    found: list[str] = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        point = _unescape(fields[4])
        if any(point == str(root) or point.startswith(f"{root}/") for root in roots):
            found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def _unescape(text: str) -> str:
    return re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), text)


def host_sysctls(current: Mapping[str, str], recorded: Mapping[str, str] | None) -> dict[str, str]:
    """The host's own values of KUBELET_SYSCTLS, to put back on down: what this machine
    recorded before (an earlier node may have set the current ones), else the current."""
    kept = recorded or {}
    return {name: kept.get(name, current[name]) for name in KUBELET_SYSCTLS}


def sysctl_changes(current: Mapping[str, str], wanted: Mapping[str, str]) -> dict[str, str]:
    """The sysctls of `wanted` whose current value differs, with the value to write."""
    return {name: value for name, value in wanted.items() if current.get(name) != value}


def parse_recorded(text: str | None) -> dict[str, str] | None:
    """Recorded sysctls (a JSON object of strings), or None when there is no usable record."""
    try:
        found = json.loads(text) if text else None
    except ValueError:
        return None
    if not isinstance(found, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in found.items()
    ):
        return None
    return found


def sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")
