"""What a user sees for a wrong setting, option or port: one line naming it, no traceback.

Exit 2 for what is wrong on its face (a setting, an option), 1 for what fails at run time.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from heartbeat.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if _is_setting(name):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def _is_setting(name: str) -> bool:
    prefixes = {field.split("_")[0].upper() + "_" for field in Settings.model_fields}
    return name.startswith((*prefixes, "PG", "OPERATOR_"))


def heartbeat(*args: str, cwd: Path, env: dict[str, str] | None = None):
    """``heartbeat ARGS`` in a fresh process, as a user runs it: (exit code, stdout, stderr)."""
    environment = {key: value for key, value in os.environ.items() if not _is_setting(key)}
    done = subprocess.run(
        [sys.executable, "-m", "heartbeat", *args],
        env=environment | (env or {}),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def busy_port():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    yield holder.getsockname()[1]
    holder.close()


# --- metrics ports ---------------------------------------------------------------------------


def test_producer_consumer_and_operator_each_have_their_own_default_metrics_port():
    settings = load_settings()
    ports = {name: settings.metrics_port_for(name) for name in ("producer", "consumer", "operator")}
    assert ports == {"producer": 8001, "consumer": 8002, "operator": 8003}


def test_metrics_port_set_wins_over_every_commands_default(monkeypatch):
    monkeypatch.setenv("METRICS_PORT", "9100")
    settings = load_settings()
    assert {settings.metrics_port_for(name) for name in ("producer", "consumer")} == {9100}


def test_a_busy_metrics_port_is_one_line_naming_it_and_exits_1(busy_port, tmp_path):
    code, _, err = heartbeat(
        "produce", "--metrics-port", str(busy_port), cwd=tmp_path, env={"METRICS_HOST": "127.0.0.1"}
    )
    assert code == 1
    assert f"METRICS_PORT {busy_port} is already in use on 127.0.0.1" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
