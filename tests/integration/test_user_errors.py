"""What a user sees when a setting, an option, a port or a service is wrong: one line, no traceback.

Exit 2 for what is wrong on its face (a setting, an option), 1 for a service that fails.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from heartbeat.cli import main
from heartbeat.migrations import default_dir
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


def shipped() -> list[str]:
    """Ids of the migrations shipped, oldest first."""
    return sorted(
        path.name.removesuffix(".sql")
        for path in default_dir().glob("*.sql")
        if not path.name.endswith(".rollback.sql")
    )


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
    too_many = len(before) + 1
    assert main(["migrate", "rollback", "--steps", str(too_many), "--yes"]) == 2
    err = capsys.readouterr().err
    assert f"--steps {too_many} is more than the {len(before)} applied migration(s)" in err
    assert "Traceback" not in err
    assert applied(empty_database) == before


def test_a_rollback_lists_what_it_will_undo_and_without_yes_or_a_terminal_does_nothing(
    empty_database, capsys
):
    assert main(["migrate"]) == 0
    capsys.readouterr()
    assert main(["migrate", "rollback", "--steps", "2"]) == 1
    out, err = capsys.readouterr()
    newest = shipped()[::-1]
    assert out.splitlines() == ["to roll back (newest first):", f"  {newest[0]}", f"  {newest[1]}"]
    assert "pass --yes" in err
    assert applied(empty_database) == shipped()


def test_a_rollback_dry_run_lists_what_would_be_undone_and_changes_nothing(empty_database, capsys):
    assert main(["migrate"]) == 0
    capsys.readouterr()
    assert main(["migrate", "rollback", "--steps", "1", "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "would roll back (newest first):",
        f"  {shipped()[-1]}",
    ]
    assert applied(empty_database) == shipped()


def test_a_rollback_with_yes_undoes_the_newest_steps(empty_database, capsys):
    assert main(["migrate"]) == 0
    assert main(["migrate", "rollback", "--steps", "2", "--yes"]) == 0
    newest = shipped()[::-1]
    assert f"rolled back: {newest[0]}, {newest[1]}" in capsys.readouterr().out
    assert applied(empty_database) == shipped()[:-2]


def test_migrate_status_json_lists_each_migration_applied_or_not(empty_database, capsys):
    assert main(["migrate"]) == 0
    assert main(["migrate", "rollback", "--yes"]) == 0
    capsys.readouterr()
    assert main(["migrate", "status", "--json"]) == 0
    *older, newest = shipped()
    assert json.loads(capsys.readouterr().out) == [
        *({"id": id_, "applied": True, "reversible": True} for id_ in older),
        {"id": newest, "applied": False, "reversible": True},
    ]


# --- tail ----------------------------------------------------------------------------------


def test_tail_against_a_broker_that_is_down_says_so_once_and_exits_1(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    code, out, err = run(
        "tail",
        "--idle-timeout",
        "2",
        env={"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"},
        cwd=str(tmp_path),
    )
    assert code == 1
    assert f"Kafka at 127.0.0.1:{port} (KAFKA_BOOTSTRAP_SERVERS) did not answer" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err  # no librdkafka line every 100 ms
    assert out == ""
    assert time.monotonic() - started < 30


def test_tail_of_a_topic_that_does_not_exist_says_so_and_exits_1(kafka_service, tmp_path):
    topic = unique("no-such-topic")
    code, _, err = run(
        "tail",
        "--topic",
        topic,
        "--idle-timeout",
        "2",
        env={"KAFKA_BOOTSTRAP_SERVERS": kafka_service.bootstrap_servers},
        cwd=str(tmp_path),
    )
    assert code == 1
    assert f"topic {topic!r} does not exist on Kafka at" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


# --- PostgreSQL's own variables --------------------------------------------------------------


def test_pg_variables_in_dotenv_are_honoured(empty_database, tmp_path):
    params = conninfo_to_dict(empty_database)
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "dbname": "PGDATABASE"}
    names |= {"password": "PGPASSWORD"}
    lines = [f"{names[key]}={value}" for key, value in params.items() if key in names]
    (tmp_path / ".env").write_text("\n".join(lines) + "\n")
    code, out, err = run("migrate", "status", cwd=str(tmp_path))
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "pending  0001.heartbeats"


@pytest.mark.parametrize("command", [["stats"], ["dlq", "count"]])
def test_a_postgresql_that_refuses_is_one_line_naming_it_and_exit_1(tmp_path, command):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"PGHOST": "127.0.0.1", "PGPORT": str(port), "DATABASE_CONNECT_TIMEOUT_SECONDS": "2"}
    code, _, err = run(*command, env=env, cwd=str(tmp_path))
    assert code == 1
    assert "PostgreSQL (DATABASE_URL or PG* variables):" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
