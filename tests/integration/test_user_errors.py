"""What a user sees when a setting, an option, a port or a service is wrong: one line, no traceback.

Exit 2 for what is wrong on its face (a setting, an option), 1 for a service that fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from heartbeat.cli import main
from tests.integration.pipeline import unique

pytestmark = pytest.mark.integration


def run(*args: str, env: dict[str, str] | None = None, cwd: str | None = None, timeout=60):
    """``heartbeat ARGS`` in a fresh process, as a user runs it; (exit code, stdout, stderr)."""
    environment = {key: value for key, value in os.environ.items() if not _is_setting(key)}
    environment.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "heartbeat", *args],
        env=environment,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return done.returncode, done.stdout, done.stderr


def _is_setting(name: str) -> bool:
    return name.startswith(("KAFKA_", "DATABASE_", "PG", "METRICS_", "LOG_", "PRODUCER_"))


@pytest.fixture
def empty_database(postgres_service, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    name = unique("ue").replace("-", "_")
    with psycopg.connect(postgres_service.conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    conninfo = make_conninfo(postgres_service.conninfo, dbname=name)
    monkeypatch.setenv("DATABASE_URL", conninfo)
    yield conninfo
    with psycopg.connect(postgres_service.conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def applied(conninfo: str) -> list[str]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT migration_id FROM _yoyo_migration ORDER BY 1").fetchall()
    return [migration_id for (migration_id,) in rows]


# --- migrate -------------------------------------------------------------------------------


def test_a_rollback_of_more_steps_than_applied_is_refused_and_undoes_nothing(
    empty_database, capsys
):
    assert main(["migrate"]) == 0
    before = applied(empty_database)
    assert main(["migrate", "rollback", "--steps", "5", "--yes"]) == 2
    err = capsys.readouterr().err
    assert "--steps 5 is more than the 3 applied migration(s)" in err
    assert "Traceback" not in err
    assert applied(empty_database) == before


def test_a_rollback_lists_what_it_will_undo_and_without_yes_or_a_terminal_does_nothing(
    empty_database, capsys
):
    assert main(["migrate"]) == 0
    capsys.readouterr()
    assert main(["migrate", "rollback", "--steps", "2"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "to roll back (newest first):",
        "  0003.dead-letters",
        "  0002.consumer-offsets",
    ]
    assert "pass --yes" in err
    assert len(applied(empty_database)) == 3


def test_a_rollback_dry_run_lists_what_would_be_undone_and_changes_nothing(
    empty_database, capsys
):
    assert main(["migrate"]) == 0
    capsys.readouterr()
    assert main(["migrate", "rollback", "--steps", "1", "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "would roll back (newest first):",
        "  0003.dead-letters",
    ]
    assert len(applied(empty_database)) == 3


def test_a_rollback_with_yes_undoes_the_newest_steps(empty_database, capsys):
    assert main(["migrate"]) == 0
    assert main(["migrate", "rollback", "--steps", "2", "--yes"]) == 0
    assert "rolled back: 0003.dead-letters, 0002.consumer-offsets" in capsys.readouterr().out
    assert applied(empty_database) == ["0001.heartbeats"]


def test_migrate_status_json_lists_each_migration_applied_or_not(empty_database, capsys):
    assert main(["migrate"]) == 0
    assert main(["migrate", "rollback", "--yes"]) == 0
    capsys.readouterr()
    assert main(["migrate", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"id": "0001.heartbeats", "applied": True, "reversible": True},
        {"id": "0002.consumer-offsets", "applied": True, "reversible": True},
        {"id": "0003.dead-letters", "applied": False, "reversible": True},
    ]
