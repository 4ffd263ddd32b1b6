"""Kubeconfig files: one cluster, one user authenticated by a client certificate.

Certificates are embedded (``*-data``), so a kubeconfig keeps working when copied elsewhere
on the machine, and every client (kubectl, helm, kwok, the Python client) reads it alike.
"""

from __future__ import annotations

import base64
from pathlib import Path

CONTEXT = "heartbeat-local"


def render(server: str, ca_cert: bytes, client_cert: bytes, client_key: bytes, user: str) -> str:
    """The text of a kubeconfig (YAML) whose current context reaches `server` as `user`."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return (
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        f"- name: {CONTEXT}\n"
        "  cluster:\n"
        f"    server: {server}\n"
        f"    certificate-authority-data: {b64(ca_cert)}\n"
        "users:\n"
        f"- name: {user}\n"
        "  user:\n"
        f"    client-certificate-data: {b64(client_cert)}\n"
        f"    client-key-data: {b64(client_key)}\n"
        "contexts:\n"
        f"- name: {CONTEXT}\n"
        "  context:\n"
        f"    cluster: {CONTEXT}\n"
        f"    user: {user}\n"
        "    namespace: default\n"
        f"current-context: {CONTEXT}\n"
    )


def write(
    path: Path, server: str, ca_cert: Path, client_cert: Path, client_key: Path, user: str
) -> Path:
    """Write a kubeconfig readable only by its owner (it holds a private key)."""
    text = render(
        server, ca_cert.read_bytes(), client_cert.read_bytes(), client_key.read_bytes(), user
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)
    return path
