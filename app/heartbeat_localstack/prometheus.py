"""A real Prometheus from the OS packages (Debian's /usr/bin/prometheus), scraping the pipeline.

    python -m heartbeat_localstack.prometheus up --dir .stack [--targets HOST:PORT,...]
    python -m heartbeat_localstack.prometheus down --dir .stack

``up`` starts it detached (or keeps the one running there when nothing changed), waits until
it is ready and prints its URL. Every target is scraped as job ``heartbeat``, and the alerting
rules (``grafana/alerts/heartbeat.rules.yaml`` by default) are evaluated at the scrape
interval. The tests use ``PrometheusServer`` directly. Its files live in ``<dir>/prometheus``:

    prometheus.yml      generated at every start
    data/               the time-series database
    prometheus.log      its log
    prometheus.pid, state.json   pid, port and configuration, to find it again
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from heartbeat_localstack import console
from heartbeat_localstack.exceptions import LocalStackError, MissingToolError, ServiceStartError
from heartbeat_localstack.ports import HOST, free_port, port_is_free
from heartbeat_localstack.process import DetachedProcess, tail

logger = logging.getLogger(__name__)

COMPONENT = "Prometheus"
JOB = "heartbeat"
DEFAULT_TARGETS = ("127.0.0.1:8001", "127.0.0.1:8002")  # `make dev`: producer, consumer
DEFAULT_RULES = Path("grafana/alerts/heartbeat.rules.yaml")
USUAL_PORT = 9090


class PrometheusQueryError(LocalStackError):
    """Prometheus refused a query (bad PromQL, unknown function...) or did not answer."""


def find_binary() -> str:
    binary = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    if binary is None:
        raise MissingToolError("Prometheus is not installed; run make system-deps")
    return binary


def config_yaml(targets: Sequence[str], scrape_interval: str, rules_files: Sequence[Path]) -> str:
    """The configuration: one job scraping `targets`, rules evaluated as often as it scrapes.

    Strings are written as JSON strings, which YAML reads the same way.
    """
    rules = "".join(f"  - {json.dumps(str(path))}\n" for path in rules_files)
    return (
        "global:\n"
        f"  scrape_interval: {scrape_interval}\n"
        f"  scrape_timeout: {scrape_interval}\n"
        f"  evaluation_interval: {scrape_interval}\n"
        + (f"rule_files:\n{rules}" if rules else "")
        + "scrape_configs:\n"
        f"  - job_name: {JOB}\n"
        "    static_configs:\n"
        f"      - targets: {json.dumps(list(targets))}\n"
    )


class PrometheusServer:
    """One Prometheus process whose files live in `state_dir`."""

    def __init__(
        self,
        state_dir: Path,
        *,
        targets: Sequence[str] = DEFAULT_TARGETS,
        rules_files: Sequence[Path] = (),
        port: int | None = None,
        scrape_interval: str = "5s",
        ready_timeout: float = 30.0,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.targets = tuple(targets)
        self.rules_files = tuple(Path(path).resolve() for path in rules_files)
        self.requested_port = port
        self.scrape_interval = scrape_interval
        self.ready_timeout = ready_timeout
        self.port: int | None = self._saved().get("port")
        self._process = DetachedProcess(self.state_dir / "prometheus.pid", str(self.config_path))

    @property
    def config_path(self) -> Path:
        return self.state_dir / "prometheus.yml"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "prometheus.log"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("Prometheus has no address before start()")
        return f"http://{HOST}:{self.port}"

    def is_running(self) -> bool:
        return self._process.is_running()

    def start(self) -> None:
        """Start it, keep the one running here if its configuration is the same, else restart."""
        config = config_yaml(self.targets, self.scrape_interval, self.rules_files)
        if self.is_running():
            saved = self._saved()
            wanted = self.requested_port in (None, saved.get("port"))
            if saved.get("config") == config and wanted:
                self.port = saved.get("port")
                logger.info("Prometheus already runs at %s", self.url)
                self.wait_ready()
                return
            logger.info("restarting Prometheus with the new configuration")
            self.stop()
        self._launch(config)
        self.wait_ready()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, SIGKILL after `timeout` seconds. Idempotent."""
        if self.is_running():
            logger.info("stopping Prometheus at %s", self.url)
        self._process.stop(timeout)

    def wait_ready(self) -> None:
        """Return once /-/ready answers 200; raise if the process died or never answered."""
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if not self.is_running():
                raise self._start_error("the process exited")
            if self._get("/-/ready") == 200:
                logger.info("Prometheus answers at %s", self.url)
                return
            if time.monotonic() > deadline:
                self.stop(timeout=5)
                raise self._start_error(f"not ready within {self.ready_timeout:.0f} s")
            time.sleep(0.2)

    # --- the HTTP API ----------------------------------------------------------

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """The result of an instant query: one item per series (a scalar gives one item)."""
        params = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
        data = self._api("/api/v1/query", params, what=expr, post=True)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def active_targets(self) -> list[dict[str, Any]]:
        targets: list[dict[str, Any]] = self._api("/api/v1/targets", {"state": "active"})[
            "activeTargets"
        ]
        return targets

    def rule_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self._api("/api/v1/rules", {})["groups"]
        return groups

    def _api(self, path: str, params: dict[str, str], what: str = "", post: bool = False) -> Any:
        """The `data` of an API answer; POST keeps long expressions out of the URL."""
        encoded = urllib.parse.urlencode(params)
        if post:
            request = urllib.request.Request(f"{self.url}{path}", data=encoded.encode())
        else:
            request = urllib.request.Request(f"{self.url}{path}?{encoded}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:  # 400/422 carry Prometheus's own message
            try:
                answer = json.load(error)
            except ValueError:
                raise PrometheusQueryError(f"{path} {what}: HTTP {error.code}") from error
        except OSError as error:
            raise PrometheusQueryError(f"{path}: Prometheus does not answer ({error})") from error
        if answer.get("status") != "success":
            raise PrometheusQueryError(
                f"{what or path}: {answer.get('errorType')}: {answer.get('error')}"
            )
        return answer["data"]

    def _get(self, path: str) -> int:
        if self.port is None:
            return 0
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return 0

    # --- starting --------------------------------------------------------------

    def _launch(self, config: str) -> None:
        binary = find_binary()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.port = self._pick_port()
        self.config_path.write_text(config)
        self._check_config()
        self._save(config)
        argv = [
            binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            "--storage.tsdb.retention.time=2d",
            f"--web.listen-address={HOST}:{self.port}",
            "--log.level=info",
        ]
        pid = self._process.spawn(argv, self.log_path, cwd=self.state_dir)
        logger.info("started Prometheus as pid %d on %s", pid, self.url)

    def _pick_port(self) -> int:
        if self.requested_port:
            if not port_is_free(self.requested_port):
                raise ServiceStartError(
                    COMPONENT, f"port {self.requested_port} is taken", self.log_path
                )
            return self.requested_port
        for candidate in (self._saved().get("port"), USUAL_PORT):
            if candidate and port_is_free(candidate):
                return int(candidate)
        return free_port()

    def _check_config(self) -> None:
        """promtool's verdict on the configuration and its rules, before anything starts."""
        promtool = shutil.which("promtool")
        if promtool is None:
            return
        result = subprocess.run(
            [promtool, "check", "config", str(self.config_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise ServiceStartError(
                COMPONENT, "its configuration is invalid", self.log_path, output
            )

    def _start_error(self, reason: str) -> ServiceStartError:
        return ServiceStartError(COMPONENT, reason, self.log_path, tail(self.log_path))

    def _saved(self) -> dict[str, Any]:
        try:
            saved = json.loads((self.state_dir / "state.json").read_text())
        except (OSError, ValueError):
            return {}
        return saved if isinstance(saved, dict) else {}

    def _save(self, config: str) -> None:
        saved = {"port": self.port, "config": config}
        (self.state_dir / "state.json").write_text(json.dumps(saved, indent=2) + "\n")


# --- command line -------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m heartbeat_localstack.prometheus",
        description="Run a real Prometheus that scrapes the locally running pipeline.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    helps = {"up": "start it (or keep it) and print its URL", "down": "stop it", "status": ""}
    for name, text in helps.items():
        command = commands.add_parser(name, help=text or "show whether it runs")
        command.add_argument(
            "--dir", type=Path, default=Path(".stack"), help="state folder (default: .stack)"
        )
    up = commands.choices["up"]
    up.add_argument(
        "--targets",
        default=",".join(DEFAULT_TARGETS),
        help="host:port of every metrics endpoint, comma separated (default: %(default)s)",
    )
    up.add_argument("--port", type=int, help="default: the last one, else 9090, else any free")
    up.add_argument("--scrape-interval", default="5s", help="default: %(default)s")
    up.add_argument(
        "--rules", type=Path, default=DEFAULT_RULES, help="alerting rules (default: %(default)s)"
    )
    return parser


def _command(args: argparse.Namespace) -> int:
    state_dir = args.dir / "prometheus"
    if args.command == "up":
        if not args.rules.is_file():
            print(f"error: no rules file at {args.rules}; pass --rules", file=sys.stderr)
            return 2
        targets = [t.strip() for t in args.targets.split(",") if t.strip()]
        server = PrometheusServer(
            state_dir,
            targets=targets,
            rules_files=[args.rules],
            port=args.port,
            scrape_interval=args.scrape_interval,
        )
        server.start()
        print(f"Prometheus at {server.url}, scraping {', '.join(targets)}.")
        print(f"PROMETHEUS_URL={server.url}")
    elif args.command == "down":
        PrometheusServer(state_dir).stop()
    else:
        server = PrometheusServer(state_dir)
        state = f"running at {server.url}" if server.is_running() else "not running"
        print(f"Prometheus: {state}; log {server.log_path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return console.run(
        lambda: _command(args), f"python -m heartbeat_localstack.prometheus up --dir {args.dir}"
    )


if __name__ == "__main__":
    sys.exit(main())
