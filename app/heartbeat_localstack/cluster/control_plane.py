"""Start, stop and inspect the local control plane under ``<dir>``.

``up`` starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok as
detached processes (pid files and logs in ``<dir>/cluster``), registers fake nodes, and
returns once the API server is ready, a node is Ready and the ``default`` ServiceAccount
exists. Every ``up`` starts from an empty etcd; ``down`` stops everything and keeps the logs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import ssl
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from heartbeat_localstack.ports import free_port
from heartbeat_localstack.process import DetachedProcess

from . import api_address, kubeconfig, pki
from .api import ApiClient
from .build import Binaries, binaries
from .components import COMPONENTS, HOST, Layout, Ports, argv, fake_node, kwok_env
from .exceptions import ClusterError, ComponentStartError, NodeBusyError, NotBuiltError
from .waiting import wait_for_component

logger = logging.getLogger(__name__)

NODE_NAMES = ("kwok-node-0", "kwok-node-1")
#: Which state folder's cluster has the machine's one real node (gone with a reboot).
REAL_NODE_OWNER = Path("/run/heartbeat-real-node")
START_TIMEOUT_SECONDS = 180.0
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Cluster:
    """A running cluster: what a client needs to reach it."""

    state_dir: Path
    kubeconfig: Path
    bin_dir: Path
    server: str

    @property
    def kubectl(self) -> Path:
        return self.bin_dir / "kubectl"

    @property
    def helm(self) -> Path:
        return self.bin_dir / "helm"


# The handles of the components this Python process started, per state folder. Stopping a
# component through the handle that started it also reaps it; a handle dropped while its
# process still runs makes `subprocess` warn (an error under pytest's warning filter).
_STARTED: dict[Path, dict[str, DetachedProcess]] = {}


def _processes(layout: Layout) -> dict[str, DetachedProcess]:
    """The components of the cluster under `layout`, running or not."""
    if layout.state not in _STARTED:
        # Every command line names a path under the state folder: a recycled pid never counts.
        _STARTED[layout.state] = {
            name: DetachedProcess(layout.pid(name), str(layout.state)) for name in COMPONENTS
        }
    return _STARTED[layout.state]


def status(state_dir: Path) -> dict[str, int | None]:
    """The pid of each component, None for those not running."""
    from . import node
    from .build import node_binaries

    layout = Layout(state_dir.resolve() / "cluster")
    running = {name: proc.pid() for name, proc in _processes(layout).items()}
    real = node.status(layout, node_binaries())
    if real:
        running.pop("kwok")  # a cluster with a real node has no fake ones
    return {**running, **real}


def server(state_dir: Path) -> str | None:
    """The API server address of the last start under `state_dir`, if there was one."""
    ports = _ports(Layout(state_dir.resolve() / "cluster"))
    return ports.server if ports else None


def down(state_dir: Path, progress: Progress = print) -> None:
    """Stop every component, newest first. Nothing to do when none runs."""
    layout = Layout(state_dir.resolve() / "cluster")
    from . import node
    from .build import node_binaries

    node.down(layout, node_binaries(), progress)
    for name, proc in reversed(_processes(layout).items()):
        if proc.is_running():
            progress(f"stopping {name}")
            proc.stop()
    ports = _ports(layout)
    if ports is not None and ports.host == api_address.ADDRESS and _owns_real_node(layout):
        if api_address.exists():
            progress(f"removing {api_address.INTERFACE} ({api_address.ADDRESS})")
            api_address.down()
        REAL_NODE_OWNER.unlink(missing_ok=True)


def _owns_real_node(layout: Layout) -> bool:
    try:
        return Path(REAL_NODE_OWNER.read_text().strip()) == layout.state
    except OSError:
        return True


def _check_real_node_free(layout: Layout) -> None:
    """Raise NodeBusyError when another state folder's cluster with a real node still runs."""
    try:
        owner = Path(REAL_NODE_OWNER.read_text().strip())
    except OSError:
        return
    if owner != layout.state and any(p.is_running() for p in _processes(Layout(owner)).values()):
        raise NodeBusyError(owner.parent)


def up(
    state_dir: Path,
    target: Binaries | None = None,
    progress: Progress = print,
    timeout: float = START_TIMEOUT_SECONDS,
    nodes: str = "kwok",
    images: Sequence[str] = (),
) -> Cluster:
    """Start the cluster (or find it running) and wait until it is usable.

    `nodes` is "kwok" (fake nodes: fast, no container runs) or "real" (one node whose
    kubelet runs pods on containerd; see `node`), whose containerd gets `images` from the
    Docker engine (also when it already runs).
    """
    state_dir = state_dir.resolve()
    target = target or binaries()
    if not target.is_built():
        raise NotBuiltError(
            f"the cluster binaries are not in {target.bin_dir}; "
            "run `python -m heartbeat_localstack.cluster build` first"
        )
    layout = Layout(state_dir / "cluster")
    procs = _processes(layout)
    if _runs_as(layout, nodes) and _answers(layout):
        progress(f"cluster already runs; kubeconfig {state_dir / 'kubeconfig'}")
        if images:
            load_images(state_dir, images, progress)
        return _describe(state_dir, layout, target)
    if nodes == "real":
        _check_real_node_free(layout)
    down(state_dir, progress)
    if nodes == "real":
        REAL_NODE_OWNER.write_text(f"{layout.state}\n")

    shutil.rmtree(layout.state, ignore_errors=True)
    layout.state.mkdir(parents=True)
    pki.create(layout.pki.root)
    ports = _pick_ports(api_address.ADDRESS if nodes == "real" else HOST)
    layout.ports_file.write_text(json.dumps(asdict(ports), indent=2) + "\n")
    try:
        if nodes == "real":
            progress(f"the API server's address: {api_address.ADDRESS} on {api_address.INTERFACE}")
            api_address.up()
        _start_all(state_dir, layout, ports, target, procs, progress, timeout, nodes, images)
    except BaseException:
        down(state_dir, progress)
        raise
    cluster = _describe(state_dir, layout, target)
    progress(f"cluster is ready at {ports.server}")
    return cluster


def _start_all(
    state_dir: Path,
    layout: Layout,
    ports: Ports,
    target: Binaries,
    procs: dict[str, DetachedProcess],
    progress: Progress,
    timeout: float,
    nodes: str = "kwok",
    images: Sequence[str] = (),
) -> None:
    def start(name: str, extra_env: dict[str, str] | None = None) -> None:
        progress(f"starting {name} (log: {layout.log(name)})")
        procs[name].spawn(
            argv(name, target, layout, ports),
            layout.log(name),
            layout.state,
            env={**os.environ, **(extra_env or {})},
        )

    def wait(name: str, what: str, check: Callable[[], bool]) -> None:
        wait_for_component(name, what, check, procs, layout, timeout)

    start("etcd")
    wait("etcd", "/health", lambda: _http_ok(f"http://{HOST}:{ports.etcd_client}/health"))

    start("kube-apiserver")
    wait("kube-apiserver", "its serving certificate", layout.pki.serving_cert.exists)
    admin = ApiClient(
        ports.server, layout.pki.serving_cert, layout.pki.cert(pki.ADMIN), layout.pki.key(pki.ADMIN)
    )
    wait("kube-apiserver", "/readyz", lambda: _status(admin, "/readyz") == 200)

    for identity in pki.IDENTITIES:
        kubeconfig.write(
            layout.kubeconfig(identity),
            ports.server,
            layout.pki.serving_cert,
            layout.pki.cert(identity),
            layout.pki.key(identity),
            identity.user,
        )
    kubeconfig.write(
        state_dir / "kubeconfig",
        ports.server,
        layout.pki.serving_cert,
        layout.pki.cert(pki.ADMIN),
        layout.pki.key(pki.ADMIN),
        pki.ADMIN.user,
    )

    start("kube-controller-manager")
    start("kube-scheduler")
    if nodes == "real":
        _start_real_node(state_dir, layout, ports, procs, progress, timeout, images)
        return
    for name in NODE_NAMES:
        status = admin.create("/api/v1/nodes", fake_node(name, target.versions.kubernetes))
        if status not in (201, 409):
            raise ComponentStartError(
                "kube-apiserver",
                f"creating node {name} answered {status}",
                layout.log("kube-apiserver"),
            )
    start("kwok", kwok_env(layout))

    wait(
        "kube-controller-manager",
        "/healthz",
        lambda: _https_ok(f"https://{HOST}:{ports.controller_manager}/healthz"),
    )
    wait(
        "kube-scheduler", "/healthz", lambda: _https_ok(f"https://{HOST}:{ports.scheduler}/healthz")
    )
    wait("kwok", "a Ready node", lambda: any(_node_ready(admin, n) for n in NODE_NAMES))
    wait(
        "kube-controller-manager",
        "the default ServiceAccount",
        lambda: _status(admin, "/api/v1/namespaces/default/serviceaccounts/default") == 200,
    )
    _link_clients(state_dir / "bin", target)


def _start_real_node(
    state_dir: Path,
    layout: Layout,
    ports: Ports,
    procs: dict[str, DetachedProcess],
    progress: Progress,
    timeout: float,
    images: Sequence[str],
) -> None:
    from . import node
    from .build import node_binaries

    target = node_binaries()
    if not target.is_built():
        raise NotBuiltError(
            "the node binaries are not built; run `python -m heartbeat_localstack.cluster "
            "build --nodes real` first"
        )
    for name, url in (
        ("kube-controller-manager", f"https://{HOST}:{ports.controller_manager}/healthz"),
        ("kube-scheduler", f"https://{HOST}:{ports.scheduler}/healthz"),
    ):
        wait_for_component(name, "/healthz", partial(_https_ok, url), procs, layout, timeout)
    _link_clients(state_dir / "bin", binaries())
    node.up(layout, ports.host, ports.apiserver, target, progress, images=images)


def load_images(state_dir: Path, images: Sequence[str], progress: Progress = print) -> None:
    """Copy `images` from the Docker engine into the running real node under `state_dir`."""
    from . import node
    from .build import node_binaries

    layout = Layout(state_dir.resolve() / "cluster")
    target = node_binaries()
    if not node.runs(layout, target):
        raise ClusterError(f"no real node runs under {state_dir}; make cluster NODES=real first")
    node.copy_images(node.node_layout(layout, target.containerd_root), images, progress)


def _runs_as(layout: Layout, nodes: str) -> bool:
    """Whether every component of a cluster with `nodes` runs under `layout`."""
    from . import node
    from .build import node_binaries

    procs = _processes(layout)
    if nodes == "kwok":
        return all(proc.is_running() for proc in procs.values())
    ports = _ports(layout)
    return (
        ports is not None
        and ports.host == api_address.ADDRESS
        and all(proc.is_running() for name, proc in procs.items() if name != "kwok")
        and node.runs(layout, node_binaries())
    )


def _pick_ports(host: str) -> Ports:
    chosen: list[int] = []
    while len(chosen) < 6:
        port = free_port()
        if port not in chosen:
            chosen.append(port)
    etcd_client, etcd_peer, apiserver, controller_manager, scheduler, kwok = chosen
    return Ports(etcd_client, etcd_peer, apiserver, controller_manager, scheduler, kwok, host)


def _ports(layout: Layout) -> Ports | None:
    """The ports of the last start under `layout`, if there was one."""
    try:
        return Ports(**json.loads(layout.ports_file.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _status(client: ApiClient, path: str) -> int:
    return client.get(path)[0]


def _node_ready(client: ApiClient, name: str) -> bool:
    code, node = client.get(f"/api/v1/nodes/{name}")
    if code != 200:
        return False
    conditions = node.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return bool(resp.status == 200)


def _https_ok(url: str) -> bool:
    # The controller manager and scheduler serve /healthz with a throwaway self-signed
    # certificate; only reachability on loopback is checked here.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(url, timeout=2, context=context) as resp:
        return bool(resp.status == 200)


def _answers(layout: Layout) -> bool:
    """Whether the API server of a running cluster says it is ready."""
    try:
        ports = Ports(**json.loads(layout.ports_file.read_text()))
        admin = ApiClient(
            ports.server,
            layout.pki.serving_cert,
            layout.pki.cert(pki.ADMIN),
            layout.pki.key(pki.ADMIN),
        )
        return _status(admin, "/readyz") == 200
    except (OSError, ValueError, TypeError):
        return False


def _link_clients(bin_dir: Path, target: Binaries) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in ("kubectl", "helm"):
        link = bin_dir / name
        link.unlink(missing_ok=True)
        link.symlink_to(target.path(name))


def _describe(state_dir: Path, layout: Layout, target: Binaries) -> Cluster:
    ports = Ports(**json.loads(layout.ports_file.read_text()))
    _link_clients(state_dir / "bin", target)
    return Cluster(state_dir, state_dir / "kubeconfig", state_dir / "bin", ports.server)
