"""The HTTP side of every process: ``/metrics``, ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the main loop keeps turning (it calls
``Health.tick``); ``/readyz`` answers 200 only while every named check passes
(connected to Kafka, to PostgreSQL...). Both answer a small JSON body.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from heartbeat.errors import MetricsPortUnavailable

logger = logging.getLogger(__name__)


class Health:
    """Liveness and readiness of one process, shared between its loop and the server."""

    def __init__(self, checks: tuple[str, ...], liveness_timeout: float) -> None:
        self._lock = threading.Lock()
        self._checks: dict[str, tuple[bool, str]] = {
            name: (False, "not checked yet") for name in checks
        }
        self._liveness_timeout = liveness_timeout
        self._last_tick = time.monotonic()

    def tick(self) -> None:
        self._last_tick = time.monotonic()

    def set(self, name: str, ok: bool, detail: str = "") -> None:
        with self._lock:
            previous = self._checks.get(name)
            self._checks[name] = (ok, detail)
        if previous is None or previous[0] != ok:
            log = logger.info if ok else logger.warning
            log("%s is %s%s", name, "ready" if ok else "not ready", f": {detail}" if detail else "")

    def is_ready(self, name: str | None = None) -> bool:
        with self._lock:
            if name is not None:
                return self._checks.get(name, (False, ""))[0]
            return all(ok for ok, _ in self._checks.values())

    def readiness(self) -> tuple[bool, dict[str, dict[str, object]]]:
        with self._lock:
            checks = {
                name: {"ok": ok, "detail": detail} for name, (ok, detail) in self._checks.items()
            }
        return all(c["ok"] for c in checks.values()), checks

    def liveness(self) -> tuple[bool, float]:
        stalled = time.monotonic() - self._last_tick
        return stalled < self._liveness_timeout, stalled


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(HTTPStatus.OK, encoder(self.server.registry), content_type)
        elif path == "/healthz":
            alive, stalled = self.server.health.liveness()
            status = {
                "status": "ok" if alive else "stalled",
                "seconds_since_tick": round(stalled, 1),
            }
            self._send_json(HTTPStatus.OK if alive else HTTPStatus.SERVICE_UNAVAILABLE, status)
        elif path == "/readyz":
            ready, checks = self.server.health.readiness()
            body = {"status": "ready" if ready else "not ready", "checks": checks}
            self._send_json(HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE, body)
        else:
            self._send_json(
                HTTPStatus.NOT_FOUND,
                {"error": "not found", "paths": ["/metrics", "/healthz", "/readyz"]},
            )

    def _send_json(self, status: HTTPStatus, body: object) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("http: %s", format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], registry: CollectorRegistry, health: Health
    ) -> None:
        self.registry = registry
        self.health = health
        super().__init__(address, _Handler)


class MetricsServer:
    """Serves the endpoints from a daemon thread; ``port`` 0 picks a free port."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry, health: Health) -> None:
        try:
            self._server = _Server((host, port), registry, health)
        except OSError as exc:
            raise MetricsPortUnavailable(bind_failure(host, port, exc.errno)) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        self._thread.start()
        logger.info("serving /metrics, /healthz and /readyz on port %d", self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def bind_failure(host: str, port: int, error: int | None) -> str:
    """One line saying why the metrics server cannot listen on ``host:port``, naming the setting."""
    if error == errno.EADDRINUSE:
        return (
            f"METRICS_PORT {port} is already in use on {host}: stop what holds it, set "
            "METRICS_PORT (or --metrics-port) to a free port, or 0 to pick one"
        )
    if error == errno.EACCES:
        return f"METRICS_PORT {port}: not allowed to listen on it (ports below 1024 need root)"
    return f"METRICS_HOST {host!r}: cannot listen there ({os.strerror(error or 0)})"
