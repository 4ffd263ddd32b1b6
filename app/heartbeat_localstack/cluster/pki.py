"""Keys and certificates for the control plane, made with the `openssl` command.

The API server makes its own self-signed serving certificate (``--cert-dir``). This module
makes the rest: a client CA and one client certificate per identity (the API server maps
the subject's O to groups and CN to the user name), a front-proxy CA and client certificate
(for aggregated APIs; the controller manager and scheduler also read its CA), and the
service-account signing key pair.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from heartbeat_localstack.exceptions import MissingToolError

from .exceptions import ClusterError

# Without a config of its own, `openssl req -x509` applies the system's CA extensions.
_OPENSSL_CONFIG = "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n"
_DAYS = "3650"


@dataclass(frozen=True)
class Identity:
    """A client of the API server: file stem, user name (CN) and group (O)."""

    name: str
    user: str
    group: str | None = None

    @property
    def subject(self) -> str:
        return (f"/O={self.group}" if self.group else "") + f"/CN={self.user}"


ADMIN = Identity("admin", "kubernetes-admin", "system:masters")
CONTROLLER_MANAGER = Identity("controller-manager", "system:kube-controller-manager")
SCHEDULER = Identity("scheduler", "system:kube-scheduler")
# kwok writes node and pod status, leases and events for every fake node.
KWOK = Identity("kwok", "kwok", "system:masters")
# A real node: its kubelet (the Node authorizer knows it by this name and group), its
# kube-proxy (bound to system:node-proxier by default), and the API server towards kubelets.
NODE = Identity("node", "system:node:heartbeat-node", "system:nodes")
KUBE_PROXY = Identity("kube-proxy", "system:kube-proxy")
KUBELET_CLIENT = Identity(
    "apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"
)
IDENTITIES = (ADMIN, CONTROLLER_MANAGER, SCHEDULER, KWOK, NODE, KUBE_PROXY, KUBELET_CLIENT)
# The API server's identity towards aggregated API servers, under a CA of its own.
FRONT_PROXY_CLIENT = Identity("front-proxy-client", "front-proxy-client")


@dataclass(frozen=True)
class Pki:
    """The files under ``<state>/pki``."""

    root: Path

    @property
    def client_ca_cert(self) -> Path:
        return self.root / "client-ca.crt"

    @property
    def client_ca_key(self) -> Path:
        return self.root / "client-ca.key"

    @property
    def front_proxy_ca_cert(self) -> Path:
        return self.root / "front-proxy-ca.crt"

    @property
    def front_proxy_ca_key(self) -> Path:
        return self.root / "front-proxy-ca.key"

    @property
    def service_account_key(self) -> Path:
        return self.root / "service-account.key"

    @property
    def service_account_pub(self) -> Path:
        return self.root / "service-account.pub"

    @property
    def serving_dir(self) -> Path:
        """Where the API server writes its self-signed ``apiserver.crt`` and key."""
        return self.root / "serving"

    @property
    def serving_cert(self) -> Path:
        return self.serving_dir / "apiserver.crt"

    def cert(self, identity: Identity) -> Path:
        return self.root / f"{identity.name}.crt"

    def key(self, identity: Identity) -> Path:
        return self.root / f"{identity.name}.key"


def create(root: Path) -> Pki:
    """Make every key and certificate (in a fresh folder)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise MissingToolError("`openssl` is needed to make the cluster's certificates")
    pki = Pki(root)
    pki.serving_dir.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    config = root / "openssl.cnf"
    config.write_text(_OPENSSL_CONFIG)
    new_cert = [openssl, "req", "-config", str(config), "-x509", "-days", _DAYS]
    new_cert += ["-newkey", "rsa:2048", "-nodes"]

    def authority(cert: Path, key: Path, name: str) -> None:
        extensions = ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign"]
        files = ["-keyout", str(key), "-out", str(cert)]
        _run([*new_cert, *files, "-subj", f"/CN={name}", *_addext(extensions)])

    def client(identity: Identity, ca_cert: Path, ca_key: Path) -> None:
        extensions = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage=clientAuth",
        ]
        files = ["-keyout", str(pki.key(identity)), "-out", str(pki.cert(identity))]
        signer = ["-CA", str(ca_cert), "-CAkey", str(ca_key)]
        _run([*new_cert, *files, "-subj", identity.subject, *signer, *_addext(extensions)])

    authority(pki.client_ca_cert, pki.client_ca_key, "heartbeat-local-client-ca")
    for identity in IDENTITIES:
        client(identity, pki.client_ca_cert, pki.client_ca_key)
    authority(pki.front_proxy_ca_cert, pki.front_proxy_ca_key, "heartbeat-local-front-proxy-ca")
    client(FRONT_PROXY_CLIENT, pki.front_proxy_ca_cert, pki.front_proxy_ca_key)

    sa_key, sa_pub = str(pki.service_account_key), str(pki.service_account_pub)
    rsa = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
    _run([openssl, "genpkey", *rsa, "-out", sa_key])
    _run([openssl, "pkey", "-in", sa_key, "-pubout", "-out", sa_pub])
    return pki


def _addext(extensions: list[str]) -> list[str]:
    return [arg for ext in extensions for arg in ("-addext", ext)]


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ClusterError(f"{' '.join(argv[:2])} failed: {result.stderr.strip()[-2000:]}")
