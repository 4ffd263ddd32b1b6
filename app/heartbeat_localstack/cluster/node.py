"""A real node beside the control plane: containerd (CRI), CNI bridge, kubelet, kube-proxy
and CoreDNS. `up` returns once the node is Ready and CoreDNS answers; `down` stops it and
removes its pods' containers, mounts, network namespaces, the bridge and the iptables chains,
and puts back the sysctls it changed.

The host facts this relies on: cgroup v1 with the cgroupfs driver, no systemd, no kernel
modules to load (br_netfilter and overlay are built in), and root without CAP_SYS_RESOURCE.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from heartbeat_localstack.docker import DockerCLI
from heartbeat_localstack.exceptions import MissingToolError
from heartbeat_localstack.ports import free_port
from heartbeat_localstack.process import DetachedProcess

from . import pki
from .build import NodeBinaries
from .components import Layout
from .exceptions import ClusterError
from .node_config import (
    BRIDGE,
    CLUSTER_DNS,
    CRI_NAMESPACE,
    HOST_SYSCTLS_FILE,
    KUBELET_SYSCTLS,
    NODE_COMPONENTS,
    NODE_NAME,
    PAUSE_IMAGE,
    NodeLayout,
    NodePorts,
    chain_cleanup,
    cni_config,
    containerd_argv,
    containerd_config,
    coredns_manifests,
    host_sysctls,
    kube_proxy_config,
    kubelet_argv,
    kubelet_config,
    mounts_under,
    parse_recorded,
    sysctl_changes,
    sysctl_path,
)
from .waiting import wait_for_component

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
START_TIMEOUT_SECONDS = 240.0
#: Images the node's runtime gets from the Docker engine when it has them.
PROJECT_IMAGES = ("heartbeat:dev",)

_STARTED: dict[Path, dict[str, DetachedProcess]] = {}


def node_layout(cluster: Layout, containerd_root: Path) -> NodeLayout:
    return NodeLayout(cluster.state / "node", containerd_root)


def _processes(layout: NodeLayout) -> dict[str, DetachedProcess]:
    if layout.state not in _STARTED:
        _STARTED[layout.state] = {
            name: DetachedProcess(layout.pid(name), str(layout.state)) for name in NODE_COMPONENTS
        }
    return _STARTED[layout.state]


def host_ip() -> str:
    """The address of the host's default route: the node's InternalIP."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        # connect() on UDP sends nothing; it only picks the outgoing interface.
        probe.connect(("198.51.100.1", 9))
        return str(probe.getsockname()[0])


def up(
    cluster: Layout,
    apiserver_host: str,
    apiserver_port: int,
    target: NodeBinaries,
    progress: Progress = print,
    timeout: float = START_TIMEOUT_SECONDS,
    images: Sequence[str] = (),
) -> None:
    """Start the node's components in order and wait until it is Ready with DNS.

    `images` (besides the pause, CoreDNS and project images) are copied from the Docker
    engine into the node's containerd first.
    """
    for tool in ("containerd", "iptables", "ip"):
        if shutil.which(tool) is None:
            raise MissingToolError(f"`{tool}` is needed for a real node (make docker installs it)")
    if not Path("/usr/lib/cni/bridge").exists():
        raise MissingToolError(
            "the CNI plugins are missing: apt-get install containernetworking-plugins"
        )
    layout = node_layout(cluster, target.containerd_root)
    down(cluster, target, progress)
    layout.state.mkdir(parents=True, exist_ok=True)
    layout.cni_conf_dir.mkdir(exist_ok=True)
    layout.containerd_root.mkdir(parents=True, exist_ok=True)
    ports = NodePorts(free_port(), free_port(), free_port(), free_port())
    (layout.state / "ports.json").write_text(json.dumps(asdict(ports)) + "\n")
    node_ip = host_ip()
    procs = _processes(layout)

    def start(name: str, argv: Sequence[str]) -> None:
        progress(f"starting {name} (log: {layout.log(name)})")
        procs[name].spawn(argv, layout.log(name), layout.state, env=dict(os.environ))

    def wait(name: str, what: str, check: Callable[[], bool]) -> None:
        wait_for_component(name, what, check, procs, layout, timeout, interval=1.0)

    _set_sysctls(layout, progress)
    layout.containerd_config.write_text(containerd_config(layout))
    (layout.cni_conf_dir / "10-heartbeat.conflist").write_text(json.dumps(cni_config(), indent=2))
    start("containerd", containerd_argv(layout))
    wait("containerd", "its socket", lambda: _ctr(layout, ["version"]).returncode == 0)

    _load_images(layout, target, progress, images)

    node_kubeconfig = cluster.kubeconfig(pki.NODE)
    proxy_kubeconfig = cluster.kubeconfig(pki.KUBE_PROXY)
    admin_kubeconfig = cluster.kubeconfig(pki.ADMIN)
    layout.kubelet_config.write_text(
        kubelet_config(layout, ports, node_ip, cluster.pki.client_ca_cert)
    )
    layout.kube_proxy_config.write_text(kube_proxy_config(ports, proxy_kubeconfig))
    start("kubelet", kubelet_argv(target.path("kubelet"), layout, node_kubeconfig, node_ip))
    start(
        "kube-proxy",
        [str(target.path("kube-proxy")), f"--config={layout.kube_proxy_config}", "--v=1"],
    )
    kubectl = [str(target.kubectl), f"--kubeconfig={admin_kubeconfig}"]
    wait("kubelet", f"node {NODE_NAME} Ready", lambda: _node_ready(kubectl))

    progress("deploying CoreDNS on the node")
    manifests = coredns_manifests(target.coredns_image, apiserver_host, apiserver_port)
    applied = subprocess.run(
        [*kubectl, "apply", "-f", "-"],
        input=json.dumps(manifests),
        capture_output=True,
        text=True,
        check=False,
    )
    if applied.returncode != 0:
        raise ClusterError(f"applying CoreDNS failed: {applied.stderr.strip()[-1000:]}")
    wait("kubelet", "CoreDNS Available", lambda: _coredns_available(kubectl))
    progress(f"node {NODE_NAME} ({node_ip}) runs pods; cluster DNS at {CLUSTER_DNS}")


def status(cluster: Layout, target: NodeBinaries) -> dict[str, int | None]:
    """The pid of each node component, None for those not running; empty without a node."""
    layout = node_layout(cluster, target.containerd_root)
    if not layout.state.exists():
        return {}
    return {name: proc.pid() for name, proc in _processes(layout).items()}


def runs(cluster: Layout, target: NodeBinaries) -> bool:
    """Whether every component of the node under `cluster` runs."""
    procs = _processes(node_layout(cluster, target.containerd_root))
    return all(proc.is_running() for proc in procs.values())


def down(cluster: Layout, target: NodeBinaries, progress: Progress = print) -> None:
    """Stop the node and remove what it put on the host. Nothing to do when none ran."""
    layout = node_layout(cluster, target.containerd_root)
    if not layout.state.exists():
        return
    procs = _processes(layout)
    for name in ("kube-proxy", "kubelet"):
        if procs[name].is_running():
            progress(f"stopping {name}")
            procs[name].stop()
    if procs["containerd"].is_running():
        progress("removing the node's pods")
        _remove_pods(layout, target)
        progress("stopping containerd")
        procs["containerd"].stop()
    _kill_leftover_shims(layout)
    if target.path("kube-proxy").exists() and shutil.which("iptables"):
        subprocess.run(
            [str(target.path("kube-proxy")), "--cleanup"],
            capture_output=True,
            check=False,
        )
    _remove_chains()
    subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True, check=False)
    _unmount(layout)
    _remove_cgroups()
    _restore_sysctls(layout, progress)


# -- images -------------------------------------------------------------------------------


def _load_images(
    layout: NodeLayout, target: NodeBinaries, progress: Progress, images: Sequence[str] = ()
) -> None:
    docker = DockerCLI()
    wanted = {PAUSE_IMAGE: target.path("pause"), target.coredns_image: target.path("coredns")}
    for image, binary in wanted.items():
        if docker.image_id(image) is None:
            progress(f"making {image} from {binary}")
            with _one_binary_root(layout, binary) as root:
                docker.import_rootfs(root, image, [f'ENTRYPOINT ["/{binary.name}"]'])
    names = list(dict.fromkeys((*wanted, *PROJECT_IMAGES, *images)))
    present = [image for image in names if docker.image_id(image)]
    missing = sorted(set(images) - set(present))
    if missing:
        raise ClusterError(f"the Docker engine has no {', '.join(missing)}; run make images")
    copy_images(layout, present, progress)


def copy_images(layout: NodeLayout, images: Sequence[str], progress: Progress = print) -> None:
    """Copy `images` from the Docker engine into the node's containerd, skipping those it
    already holds in the same version (its store outlives the cluster)."""
    docker = DockerCLI()
    record_path = layout.containerd_root / "copied-images.json"
    try:
        copied: dict[str, str] = json.loads(record_path.read_text())
    except (OSError, ValueError):
        copied = {}
    listed = _ctr(layout, ["images", "ls", "-q"]).stdout.split()
    ids = {image: docker.image_id(image) or "" for image in images}
    stale = [i for i in images if copied.get(i) != ids[i] or _cri_name(i) not in listed]
    if not stale:
        progress(f"the node's containerd already holds {', '.join(images)}")
        return
    started = time.monotonic()
    progress(f"copying {', '.join(stale)} from the Docker engine into the node's containerd")
    docker.save_into(stale, _ctr_argv(layout, ["images", "import", "--no-unpack", "-"]))
    copied.update({image: ids[image] for image in stale})
    record_path.write_text(json.dumps(copied, indent=2) + "\n")
    progress(f"images copied in {time.monotonic() - started:.0f} s")


def _cri_name(image: str) -> str:
    """How containerd names an image that Docker calls `image` (docker.io/library/... )."""
    name = image if ":" in image.rsplit("/", 1)[-1] else f"{image}:latest"
    first = name.split("/", 1)[0]
    if "/" not in name:
        return f"docker.io/library/{name}"
    if "." in first or ":" in first or first == "localhost":
        return name
    return f"docker.io/{name}"


@contextlib.contextmanager
def _one_binary_root(layout: NodeLayout, binary: Path):  # type: ignore[no-untyped-def]
    root = layout.state / f"rootfs-{binary.name}"
    shutil.rmtree(root, ignore_errors=True)
    (root / "etc").mkdir(parents=True)
    shutil.copy2(binary, root / binary.name)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- containerd -----------------------------------------------------------------------------


def _ctr_argv(layout: NodeLayout, args: Sequence[str]) -> list[str]:
    return ["ctr", f"--address={layout.socket}", f"--namespace={CRI_NAMESPACE}", *args]


def _ctr(layout: NodeLayout, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _ctr_argv(layout, args), capture_output=True, text=True, timeout=60, check=False
    )


def _remove_pods(layout: NodeLayout, target: NodeBinaries) -> None:
    """Stop and remove every pod sandbox through CRI, so CNI tears each network down."""
    crictl = [str(target.path("crictl")), f"--runtime-endpoint=unix://{layout.socket}"]
    listed = subprocess.run(
        [*crictl, "pods", "-q"], capture_output=True, text=True, timeout=60, check=False
    )
    for pod in listed.stdout.split():
        subprocess.run([*crictl, "stopp", pod], capture_output=True, timeout=120, check=False)
        subprocess.run([*crictl, "rmp", "-f", pod], capture_output=True, timeout=120, check=False)


def _kill_leftover_shims(layout: NodeLayout) -> None:
    """containerd-shim processes of this containerd outlive it; end them (and their tasks)."""
    marker = str(layout.socket)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "containerd-shim" in cmdline and marker in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), 9)


# -- host state -----------------------------------------------------------------------------


def _current_sysctls() -> dict[str, str]:
    return {name: sysctl_path(name).read_text().strip() for name in KUBELET_SYSCTLS}


def _recorded_sysctls(layout: NodeLayout, record: Path) -> dict[str, str] | None:
    """The machine's record of the host's values; else the one a node of an older checkout
    kept in its own state folder."""
    for path in (record, layout.sysctls_file):
        try:
            found = parse_recorded(path.read_text())
        except OSError:
            continue
        if found is not None:
            return found
    return None


def _set_sysctls(layout: NodeLayout, progress: Progress, record: Path = HOST_SYSCTLS_FILE) -> None:
    current = _current_sysctls()
    originals = host_sysctls(current, _recorded_sysctls(layout, record))
    record.write_text(json.dumps(originals, indent=2) + "\n")
    left = sysctl_changes(current, originals)
    if left:
        progress(
            "the host's own values, recorded by an earlier node that was not stopped, are kept "
            "to put back: " + ", ".join(f"{name}={value}" for name, value in left.items())
        )
    changed = sysctl_changes(current, KUBELET_SYSCTLS)
    for name, value in changed.items():
        sysctl_path(name).write_text(value)
    if changed:
        progress(
            "set for the kubelet (put back on cluster-down): "
            + ", ".join(f"{name}={value} (was {current[name]})" for name, value in changed.items())
        )


def _restore_sysctls(
    layout: NodeLayout, progress: Progress, record: Path = HOST_SYSCTLS_FILE
) -> None:
    originals = _recorded_sysctls(layout, record)
    if originals is None:
        return
    for name, value in sysctl_changes(_current_sysctls(), originals).items():
        sysctl_path(name).write_text(value)
        progress(f"put back {name}={value}")
    record.unlink(missing_ok=True)
    layout.sysctls_file.unlink(missing_ok=True)


def _remove_chains() -> None:
    for binary in ("iptables", "ip6tables"):
        if shutil.which(binary) is None:
            continue
        saved = subprocess.run(
            [f"{binary}-save"], capture_output=True, text=True, check=False
        ).stdout
        for args in chain_cleanup(saved):
            subprocess.run([binary, "-w", *args], capture_output=True, check=False)


def _unmount(layout: NodeLayout) -> None:
    roots = (layout.state, layout.containerd_root, Path("/run/netns"), Path("/var/run/netns"))
    mountinfo = Path("/proc/self/mountinfo").read_text()
    points = [
        p
        for p in mounts_under(mountinfo, roots)
        if not p.startswith(("/run/netns", "/var/run/netns")) or "/cni-" in p
    ]
    for point in points:
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    for folder in (Path("/run/netns"), Path("/var/run/netns")):
        for netns in folder.glob("cni-*") if folder.exists() else ():
            with contextlib.suppress(OSError):
                netns.unlink()


def _remove_cgroups() -> None:
    """The kubelet's kubepods hierarchy in every cgroup v1 controller, deepest first."""
    root = Path("/sys/fs/cgroup")
    for controller in root.iterdir() if root.exists() else ():
        top = controller / "kubepods"
        if not top.is_dir():
            continue
        folders = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for folder in [*folders, top]:
            with contextlib.suppress(OSError):
                folder.rmdir()


# -- waiting ---------------------------------------------------------------------------------


def _node_ready(kubectl: list[str]) -> bool:
    result = subprocess.run(
        [
            *kubectl,
            "get",
            "node",
            NODE_NAME,
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    return result.stdout.strip() == "True"


def _coredns_available(kubectl: list[str]) -> bool:
    result = subprocess.run(
        [
            *kubectl,
            "-n",
            "kube-system",
            "get",
            "deployment",
            "coredns",
            "-o",
            "jsonpath={.status.availableReplicas}",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    return result.stdout.strip() == "1"
