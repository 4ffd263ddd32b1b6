"""Build the control-plane binaries from the Go module proxy, once per set of versions.

The binaries land in ``<cache>/k8s-<kubernetes version>/bin``. A ``built.json`` marker is
written only after every binary has been built, so an interrupted build is redone; Go's own
module and build caches make the second attempt quick. Builds run at the lowest CPU priority.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from string import Template

from heartbeat_localstack.exceptions import MissingToolError
from heartbeat_localstack.process import tail

from .exceptions import BuildError
from .versions import BINARIES, NODE_BINARIES, PINNED, Versions, cache_root, release_dir

logger = logging.getLogger(__name__)

GOMOD_DIR = Path(__file__).with_name("gomod")
MARKER = "built.json"
KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
KWOK_PACKAGE = "sigs.k8s.io/kwok/cmd/kwok"
HELM_PACKAGE = "helm.sh/helm/v3/cmd/helm"
ETCD_PACKAGE = "go.etcd.io/etcd/server/v3"
NODE_COMMANDS = ("kubelet", "kube-proxy")
COREDNS_PACKAGE = "github.com/coredns/coredns"
CRICTL_PACKAGE = "sigs.k8s.io/cri-tools/cmd/crictl"
NODE_MARKER = "node-built.json"
# The build is a background chore: it yields the CPU to everything else on the machine.
BUILD_NICENESS = 19

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Binaries:
    """Where the built binaries of one set of versions live."""

    versions: Versions
    root: Path

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def marker(self) -> Path:
        return self.root / MARKER

    def path(self, name: str) -> Path:
        return self.bin_dir / name

    def is_built(self) -> bool:
        """True when the marker records these versions and every binary is present."""
        return _built(self.marker, self.versions.as_dict(), [self.path(n) for n in BINARIES])


@dataclass(frozen=True)
class NodeBinaries:
    """The binaries of a real node (beside the control plane's) and its image store."""

    versions: Versions
    root: Path
    cache: Path

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def marker(self) -> Path:
        return self.root / NODE_MARKER

    @property
    def kubectl(self) -> Path:
        return self.bin_dir / "kubectl"

    @property
    def containerd_root(self) -> Path:
        """The node's containerd image store and snapshots: kept across cluster starts."""
        return self.cache / "containerd"

    @property
    def coredns_image(self) -> str:
        return f"heartbeat.local/coredns:{self.versions.coredns}"

    def path(self, name: str) -> Path:
        return self.bin_dir / name

    def is_built(self) -> bool:
        return _built(self.marker, self.versions.node_dict(), [self.path(n) for n in NODE_BINARIES])


def _built(marker: Path, versions: Mapping[str, object], paths: Sequence[Path]) -> bool:
    """True when ``marker`` records ``versions`` and every one of ``paths`` is executable."""
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if recorded.get("versions") != versions:
        return False
    return all(os.access(path, os.X_OK) for path in paths)


def node_binaries(versions: Versions = PINNED, cache: Path | None = None) -> NodeBinaries:
    root = cache or cache_root()
    return NodeBinaries(versions, release_dir(versions, root), root)


def binaries(versions: Versions = PINNED, cache: Path | None = None) -> Binaries:
    """The binaries of `versions` in the cache (built or not)."""
    return Binaries(versions, release_dir(versions, cache))


def staging_replaces(kubernetes_go_mod: str, staging_version: str) -> list[str]:
    """``replace`` lines pinning each staging module k8s.io/kubernetes requires.

    A staging module is one its go.mod replaces with a ``./staging/`` folder; only those it
    also requires are listed (a few staging modules are never published).
    """
    staged = set(re.findall(r"^\s*(k8s\.io/\S+)\s+=>\s+\./staging/", kubernetes_go_mod, re.M))
    required = set(re.findall(r"^\s*(k8s\.io/\S+)\s+v0\.0\.0\b", kubernetes_go_mod, re.M))
    return [f"\t{module} => {module} v{staging_version}" for module in sorted(staged & required)]


def kube_ldflags(versions: Versions, git_commit: str, build_date: str) -> str:
    """Linker flags that make /version and ``kubectl version`` report the real release."""
    values = {
        "gitVersion": f"v{versions.kubernetes}",
        "gitMajor": versions.kubernetes.split(".")[0],
        "gitMinor": versions.kube_minor,
        "gitCommit": git_commit,
        "gitTreeState": "clean",
        "buildDate": build_date,
    }
    # kubectl reports its own version from client-go, the servers from component-base.
    packages = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
    flags = [f"-X {pkg}.{key}={value}" for pkg in packages for key, value in values.items()]
    return " ".join(["-s", "-w", *flags])


def helm_ldflags(versions: Versions, git_commit: str) -> str:
    """Linker flags for Helm's version and its default Kubernetes version (no cluster)."""
    flags = [
        f"-X helm.sh/helm/v3/internal/version.version=v{versions.helm}",
        f"-X helm.sh/helm/v3/internal/version.gitCommit={git_commit}",
        "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
    ]
    for pkg in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
        flags.append(f"-X {pkg}.k8sVersionMajor={versions.kubernetes.split('.')[0]}")
        flags.append(f"-X {pkg}.k8sVersionMinor={versions.kube_minor}")
    return " ".join(["-s", "-w", *flags])


def kwok_ldflags(versions: Versions) -> str:
    return f"-s -w -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=v{versions.kubernetes}"


def etcd_ldflags(git_commit: str) -> str:
    return f"-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA={git_commit[:7]}"


class Builder:
    """Runs the Go toolchain for one set of versions, logging each step to its own file."""

    def __init__(self, target: Binaries, progress: Progress = print) -> None:
        self.target = target
        self.progress = progress
        self.logs = target.root / "logs"
        self.src = target.root / "src"
        self.seconds: dict[str, float] = {}
        go = shutil.which("go")
        if go is None:
            raise MissingToolError("the Go toolchain (`go`) is needed to build the cluster")
        self.go = go
        self.env = {**os.environ, "CGO_ENABLED": "0"}

    def run(self) -> None:
        versions = self.target.versions
        build_date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        started = time.monotonic()
        self.target.marker.unlink(missing_ok=True)
        for folder in (self.target.bin_dir, self.logs, self.src):
            folder.mkdir(parents=True, exist_ok=True)

        self._kubernetes_commands(KUBE_COMMANDS, build_date)

        etcd_src = self.src / "etcd"
        etcd_commit = self._etcd_module(etcd_src)
        self._go(
            "etcd",
            [
                "build",
                "-trimpath",
                "-ldflags",
                etcd_ldflags(etcd_commit),
                "-o",
                str(self.target.path("etcd")),
                ETCD_PACKAGE,
            ],
            cwd=etcd_src,
        )

        install_env = {"GOBIN": str(self.target.bin_dir)}
        self._go(
            "kwok",
            [
                "install",
                "-trimpath",
                "-ldflags",
                kwok_ldflags(versions),
                f"{KWOK_PACKAGE}@v{versions.kwok}",
            ],
            cwd=self.src,
            env=install_env,
        )
        helm_commit = self._commit("helm.sh/helm/v3", versions.helm, "helm")
        self._go(
            "helm",
            [
                "install",
                "-trimpath",
                "-ldflags",
                helm_ldflags(versions, helm_commit),
                f"{HELM_PACKAGE}@v{versions.helm}",
            ],
            cwd=self.src,
            env=install_env,
        )

        total = time.monotonic() - started
        marker = {
            "versions": versions.as_dict(),
            "go": self._go_version(),
            "built_at": build_date,
            "seconds": {name: round(value, 1) for name, value in self.seconds.items()},
            "total_seconds": round(total, 1),
        }
        self.target.marker.write_text(json.dumps(marker, indent=2) + "\n")
        self.progress(f"all binaries built in {total / 60:.1f} min -> {self.target.bin_dir}")

    def _kubernetes_commands(self, commands: Iterable[str], build_date: str) -> None:
        """Build ``k8s.io/kubernetes/cmd/<command>`` for each command, from the wrapper module."""
        kube_src = self.src / "kubernetes"
        kube_commit = self._kubernetes_module(kube_src)
        for command in commands:
            self._go(
                command,
                [
                    "build",
                    "-trimpath",
                    "-ldflags",
                    kube_ldflags(self.target.versions, kube_commit, build_date),
                    "-o",
                    str(self.target.path(command)),
                    f"k8s.io/kubernetes/cmd/{command}",
                ],
                cwd=kube_src,
            )

    def run_node(self, node: NodeBinaries) -> None:
        """kubelet and kube-proxy from the same module as the control plane, CoreDNS, crictl,
        and the pause binary from Kubernetes' pause.c."""
        versions = self.target.versions
        build_date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        started = time.monotonic()
        node.marker.unlink(missing_ok=True)
        for folder in (self.target.bin_dir, self.logs, self.src):
            folder.mkdir(parents=True, exist_ok=True)
        self._kubernetes_commands(NODE_COMMANDS, build_date)
        install_env = {"GOBIN": str(self.target.bin_dir)}
        for step, package, version in (
            ("coredns", COREDNS_PACKAGE, versions.coredns),
            ("crictl", CRICTL_PACKAGE, versions.crictl),
        ):
            self._go(
                step,
                ["install", "-trimpath", "-ldflags", "-s -w", f"{package}@v{version}"],
                cwd=self.src,
                env=install_env,
            )
        self._pause(self.src / "kubernetes")
        total = time.monotonic() - started
        marker = {
            "versions": versions.node_dict(),
            "go": self._go_version(),
            "built_at": build_date,
            "seconds": {name: round(self.seconds[name], 1) for name in NODE_BINARIES},
            "total_seconds": round(total, 1),
        }
        node.marker.write_text(json.dumps(marker, indent=2) + "\n")
        self.progress(f"node binaries built in {total / 60:.1f} min -> {self.target.bin_dir}")

    def _pause(self, kube_src: Path) -> None:
        """The sandbox's pause process, compiled statically from the module's own pause.c."""
        gcc = shutil.which("gcc")
        if gcc is None:
            raise MissingToolError("gcc is needed to compile the pod sandbox's pause binary")
        module_dir = self._go(
            "pause-source",
            ["list", "-m", "-f", "{{.Dir}}", "k8s.io/kubernetes"],
            cwd=kube_src,
            timed=False,
            capture=True,
        ).strip()
        source = Path(module_dir) / "build" / "pause" / "linux" / "pause.c"
        self.progress("building pause")
        started = time.monotonic()
        result = subprocess.run(
            [gcc, "-Os", "-static", "-o", str(self.target.path("pause")), str(source)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            log_path = self.logs / "pause.log"
            log_path.write_text(result.stderr)
            raise BuildError("pause", log_path, result.stderr[-2000:])
        self.seconds["pause"] = time.monotonic() - started

    # -- the wrapper modules -------------------------------------------------------------

    def _kubernetes_module(self, src: Path) -> str:
        versions = self.target.versions
        info = self._download("k8s.io/kubernetes", versions.kubernetes, "kubernetes-module")
        go_mod = Path(info["GoMod"]).read_text()
        replaces = staging_replaces(go_mod, versions.staging)
        if not replaces:
            raise BuildError(
                "kubernetes-module",
                self.logs / "kubernetes-module.log",
                "no staging modules found in k8s.io/kubernetes's go.mod",
            )
        self._write_module(
            src,
            "kubernetes",
            {
                "kubernetes": versions.kubernetes,
                "replaces": "".join(line + "\n" for line in replaces),
            },
        )
        self._go("kubernetes-module", ["mod", "tidy"], cwd=src, timed=False)
        return self._origin_hash(info)

    def _etcd_module(self, src: Path) -> str:
        versions = self.target.versions
        self._write_module(src, "etcd", {"etcd": versions.etcd})
        self._go("etcd-module", ["mod", "tidy"], cwd=src, timed=False)
        return self._commit("go.etcd.io/etcd/server/v3", versions.etcd, "etcd-module")

    def _write_module(self, src: Path, name: str, values: Mapping[str, str]) -> None:
        src.mkdir(parents=True, exist_ok=True)
        go_mod = Template((GOMOD_DIR / f"{name}.go.mod.in").read_text()).substitute(values)
        (src / "go.mod").write_text(go_mod)
        (src / "go.sum").unlink(missing_ok=True)
        shutil.copyfile(GOMOD_DIR / f"{name}.tools.go.in", src / "tools.go")

    def _commit(self, module: str, version: str, step: str) -> str:
        return self._origin_hash(self._download(module, version, step))

    def _download(self, module: str, version: str, step: str) -> dict[str, str]:
        output = self._go(
            step,
            ["mod", "download", "-json", f"{module}@v{version}"],
            cwd=self.src,
            timed=False,
            capture=True,
        )
        info: dict[str, str] = json.loads(output)
        return info

    @staticmethod
    def _origin_hash(info: Mapping[str, str]) -> str:
        """The git commit of a downloaded module version, or "unknown" if the proxy omits it."""
        try:
            recorded = json.loads(Path(info["Info"]).read_text())
        except (KeyError, OSError, ValueError):
            return "unknown"
        commit = (recorded.get("Origin") or {}).get("Hash")
        return str(commit) if commit else "unknown"

    def _go_version(self) -> str:
        result = subprocess.run(
            [self.go, "env", "GOVERSION"], capture_output=True, text=True, check=False, env=self.env
        )
        return result.stdout.strip()

    # -- running go -----------------------------------------------------------------------

    def _go(
        self,
        step: str,
        args: Sequence[str],
        cwd: Path,
        env: Mapping[str, str] | None = None,
        timed: bool = True,
        capture: bool = False,
    ) -> str:
        """Run ``go <args>``; its stderr (and stdout unless captured) go to ``logs/<step>.log``."""
        log_path = self.logs / f"{step}.log"
        if timed:
            self.progress(f"building {step} ({cold_estimate(step)}log: {log_path})")
        started = time.monotonic()
        with log_path.open("ab") as log:
            log.write(f"\n$ go {' '.join(args)}\n".encode())
            log.flush()
            result = subprocess.run(
                [self.go, *args],
                cwd=cwd,
                env={**self.env, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if capture else log,
                stderr=log,
                preexec_fn=_lowest_priority,
                check=False,
            )
        if result.returncode != 0:
            raise BuildError(step, log_path, tail(log_path))
        elapsed = time.monotonic() - started
        if timed:
            self.seconds[step] = elapsed
            self.progress(f"built {step} in {elapsed:.0f} s")
        return result.stdout.decode() if capture else ""


# What each step took in a cold build (empty Go caches) on a machine with 2 cores.
COLD_SECONDS: Mapping[str, float] = {
    "kube-apiserver": 196,
    "kube-controller-manager": 49,
    "kube-scheduler": 4,
    "kubectl": 19,
    "etcd": 21,
    "kwok": 67,
    "helm": 52,
    "kubelet": 30,
    "kube-proxy": 9,
    "coredns": 135,
    "crictl": 44,
}
CONTROL_PLANE_STEPS = (*KUBE_COMMANDS, "etcd", "kwok", "helm")
NODE_STEPS = (*NODE_COMMANDS, "coredns", "crictl")


def cold_estimate(step: str) -> str:
    """The progress line's hint of how long ``step`` takes cold, or nothing for an unknown step."""
    seconds = COLD_SECONDS.get(step)
    if seconds is None:
        return ""
    if seconds < 90:
        return f"about {seconds:.0f} s when cold; "
    return f"about {seconds / 60:.0f} min when cold; "


def _minutes(steps: Iterable[str]) -> str:
    total = sum(COLD_SECONDS.get(step, 0) for step in steps)
    return f"about {max(1, round(total / 60))} min"


def _lowest_priority() -> None:
    os.setpriority(os.PRIO_PROCESS, 0, BUILD_NICENESS)


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock so two builds of one release never run at once."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build(
    versions: Versions = PINNED,
    cache: Path | None = None,
    force: bool = False,
    progress: Progress = print,
) -> Binaries:
    """Build every binary unless the cache already holds them; returns where they are."""
    target = binaries(versions, cache)
    with _exclusive(target.root / ".lock"):
        if target.is_built() and not force:
            progress(
                f"binaries for Kubernetes {versions.kubernetes} are cached in {target.bin_dir}"
            )
            return target
        progress(
            f"building Kubernetes {versions.kubernetes}, etcd {versions.etcd}, kwok "
            f"{versions.kwok} and helm {versions.helm} into {target.bin_dir}; a first build "
            f"takes {_minutes(CONTROL_PLANE_STEPS)} on 2 cores, later ones reuse Go's caches"
        )
        Builder(target, progress).run()
    return target


def build_node(
    versions: Versions = PINNED,
    cache: Path | None = None,
    force: bool = False,
    progress: Progress = print,
) -> NodeBinaries:
    """Build what a real node runs unless the cache holds it (the control plane first)."""
    control_plane = build(versions, cache, progress=progress)
    node = node_binaries(versions, cache)
    with _exclusive(control_plane.root / ".lock"):
        if node.is_built() and not force:
            progress(f"node binaries for Kubernetes {versions.kubernetes} are cached")
            return node
        progress(
            f"building kubelet and kube-proxy {versions.kubernetes}, CoreDNS {versions.coredns}, "
            f"crictl {versions.crictl} and pause into {node.bin_dir}; a first build takes "
            f"{_minutes(NODE_STEPS)} on 2 cores"
        )
        Builder(control_plane, progress).run_node(node)
    return node
