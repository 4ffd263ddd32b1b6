"""The API server's address when the cluster has a real node.

Pods reach the API server through the ``kubernetes`` Service, whose endpoint is the address
the API server advertises; a loopback address cannot be that endpoint. So the API server
binds and advertises an address of its own, a /32 on the loopback interface (the kernel here
has no `dummy` interface type, and the CNI bridge only exists once a pod does): pods reach it
through their bridge's gateway, the host, which owns it; host clients reach it directly; no
packet to it ever leaves the machine. Its self-signed serving certificate names it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

from heartbeat_localstack.exceptions import MissingToolError

from .exceptions import ClusterError

INTERFACE = "lo"
#: Outside the pod (10.244.0.0/16) and Service (10.96.0.0/16) ranges; a /32 routes nowhere else.
ADDRESS = "10.245.0.1"
#: The address's label, which says whose it is in `ip addr`.
LABEL = "lo:hb-api"


def exists() -> bool:
    if shutil.which("ip") is None:
        return False
    shown = subprocess.run(
        ["ip", "-o", "-4", "addr", "show", "dev", INTERFACE],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return f" {ADDRESS}/32 " in shown


def up() -> None:
    """Add the address (anew, if one was left behind)."""
    if shutil.which("ip") is None:
        raise MissingToolError("`ip` (iproute2) is needed for the API server's address")
    down()
    _ip(["addr", "add", f"{ADDRESS}/32", "dev", INTERFACE, "label", LABEL])


def down() -> None:
    """Remove the address; nothing to do when there is none."""
    if exists():
        _ip(["addr", "del", f"{ADDRESS}/32", "dev", INTERFACE])


def _ip(args: Sequence[str]) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ClusterError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")
