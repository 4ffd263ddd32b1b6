"""The few API-server requests the cluster's own start-up needs, over HTTPS with a client cert.

Start-up must not depend on the Kubernetes Python client (nothing else but the standard
library is needed to bring the cluster up), so this speaks plain JSON to a handful of paths.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class ApiClient:
    """Requests to one API server as one client-certificate identity."""

    def __init__(self, server: str, ca_cert: Path, client_cert: Path, client_key: Path) -> None:
        self.server = server.rstrip("/")
        self._context = ssl.create_default_context(cafile=str(ca_cert))
        self._context.load_cert_chain(str(client_cert), str(client_key))

    def request(
        self, method: str, path: str, body: Any = None, timeout: float = 5.0
    ) -> tuple[int, Any]:
        """(HTTP status, decoded JSON body or text). Connection errors raise OSError."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.server}{path}", data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self._context, timeout=timeout) as resp:
                return resp.status, _decode(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _decode(exc.read())

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def create(self, path: str, body: dict[str, Any]) -> int:
        """POST a new object; 201 when created, 409 when it exists already."""
        status, _ = self.request("POST", path, body)
        return status


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
