"""`python -m heartbeat_localstack.prometheus`: a real Prometheus started, adopted, stopped."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

import pytest

from heartbeat_localstack.exceptions import ServiceStartError
from heartbeat_localstack.ports import free_port, port_is_free
from heartbeat_localstack.prometheus import PrometheusQueryError, PrometheusServer, config_yaml
from tests.monitoring.queries import ROOT, RULES


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heartbeat_localstack.prometheus", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=ROOT,
    )


def _pid(state_dir) -> int:
    return int((state_dir / "prometheus" / "prometheus.pid").read_text())


@pytest.mark.integration
def test_up_prints_the_url_keeps_a_running_server_restarts_a_changed_one_and_down_stops_it(
    tmp_path,
):
    port, target = free_port(), f"127.0.0.1:{free_port()}"
    up = _cli("up", "--dir", str(tmp_path), "--port", str(port), "--targets", target)
    assert up.returncode == 0, up.stderr
    url = f"http://127.0.0.1:{port}"
    assert f"PROMETHEUS_URL={url}" in up.stdout
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=5) as response:
            assert response.status == 200
        first = _pid(tmp_path)

        again = _cli("up", "--dir", str(tmp_path), "--targets", target)
        assert again.returncode == 0, again.stderr
        assert _pid(tmp_path) == first, "an unchanged configuration keeps the running server"

        other = f"127.0.0.1:{free_port()}"
        changed = _cli("up", "--dir", str(tmp_path), "--targets", other)
        assert changed.returncode == 0, changed.stderr
        assert _pid(tmp_path) != first
        assert url in changed.stdout, "a restart keeps the address"
        config = (tmp_path / "prometheus" / "prometheus.yml").read_text()
        assert other in config
        assert target not in config
    finally:
        down = _cli("down", "--dir", str(tmp_path))
    assert down.returncode == 0, down.stderr
    assert "not running" in _cli("status", "--dir", str(tmp_path)).stdout
    assert port_is_free(port)


@pytest.mark.integration
def test_a_target_that_does_not_answer_is_down_and_its_alert_goes_pending(tmp_path):
    server = PrometheusServer(
        tmp_path,
        targets=[f"127.0.0.1:{free_port()}"],
        rules_files=[RULES],
        port=free_port(),
        scrape_interval="1s",
    )
    server.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            alerts = server.query('ALERTS{alertname="HeartbeatComponentDown"}')
            if alerts:
                break
            time.sleep(0.3)
        assert [a["metric"]["alertstate"] for a in alerts] == ["pending"]
        (target,) = server.active_targets()
        assert target["health"] == "down"
        assert server.query("vector(1)")[0]["value"][1] == "1"
        with pytest.raises(PrometheusQueryError, match="parse error"):
            server.query("sum(")
    finally:
        server.stop()
    assert not server.is_running()


@pytest.mark.integration
def test_a_bad_rules_file_stops_the_start_with_promtool_s_verdict(tmp_path):
    rules = tmp_path / "broken.rules.yaml"
    rules.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum(\n")
    server = PrometheusServer(tmp_path / "p", targets=[], rules_files=[rules], port=free_port())
    with pytest.raises(ServiceStartError, match="configuration is invalid") as error:
        server.start()
    assert "broken.rules.yaml" in error.value.log_tail
    assert not server.is_running()


def test_the_configuration_scrapes_every_target_as_the_heartbeat_job_at_the_interval():
    text = config_yaml(["127.0.0.1:8001", "127.0.0.1:8002"], "5s", [RULES])
    assert "scrape_interval: 5s" in text
    assert "evaluation_interval: 5s" in text
    assert "job_name: heartbeat" in text
    assert '"127.0.0.1:8001", "127.0.0.1:8002"' in text
    assert f'"{RULES}"' in text
