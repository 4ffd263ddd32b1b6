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

from heartbeat.cli import main
from heartbeat.settings import Settings, libpq_from_dotenv, load_settings

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


# --- settings that say what they mean ------------------------------------------------------


def test_an_empty_bootstrap_servers_is_refused_by_name_not_taken_as_the_default(
    monkeypatch, capsys
):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "")
    assert main(["tail"]) == 2
    err = capsys.readouterr().err
    assert "KAFKA_BOOTSTRAP_SERVERS: is empty" in err
    assert "Traceback" not in err


def test_an_empty_value_in_dotenv_is_refused_where_the_default_is_not_empty(tmp_path, capsys):
    (tmp_path / ".env").write_text("KAFKA_TOPIC=\nPRODUCER_COUNT=\n")
    assert main(["settings"]) == 2
    err = capsys.readouterr().err
    assert "KAFKA_TOPIC: is empty" in err
    assert "PRODUCER_COUNT" not in err  # its default is empty: empty means "run until stopped"


def test_a_misspelt_setting_in_dotenv_is_warned_about_with_the_closest_real_one(tmp_path, capsys):
    (tmp_path / ".env").write_text("KAFKA_TOPC=mine\nOPERATOR_NAMESPACE=x\nEDITOR=vi\n")
    assert main(["settings"]) == 0
    err = capsys.readouterr().err
    assert "KAFKA_TOPC is not a setting and is ignored; did you mean KAFKA_TOPIC?" in err
    assert "did you mean OPERATOR_NAMESPACES?" in err
    assert "EDITOR" not in err


def test_a_dotenv_that_is_not_utf8_is_one_line_naming_the_file_and_line_and_exits_2(tmp_path):
    (tmp_path / ".env").write_bytes(b"KAFKA_TOPIC=a\n\xff\xfe=bad\n")
    code, _, err = heartbeat("lag", cwd=tmp_path)
    assert code == 2
    assert err == "heartbeat: .env: line 2 is not UTF-8 (byte 0xff); save the file as UTF-8\n"


def test_a_log_file_that_cannot_be_opened_is_named_and_exits_2(tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    log_file = tmp_path / "taken" / "heartbeat.log"
    code, _, err = heartbeat("settings", cwd=tmp_path, env={"LOG_FILE": str(log_file)})
    assert code == 2
    assert err.startswith("heartbeat: invalid settings:\n")
    assert f"  LOG_FILE: cannot open {str(log_file)!r}: File exists" in err
    assert "Traceback" not in err


def test_a_pgport_that_is_not_a_port_is_named_at_once_and_exits_2(monkeypatch, capsys):
    monkeypatch.setenv("PGPORT", "notaport")
    assert main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert "PGPORT: expected a port number from 1 to 65535, got 'notaport'" in err
    assert "Traceback" not in err


def test_pg_variables_in_dotenv_go_to_libpq_unless_the_environment_sets_them():
    dotenv = {"PGHOST": "db.example", "PGPORT": "6543", "KAFKA_TOPIC": "t", "PGUSER": "file"}
    assert libpq_from_dotenv(dotenv, {"PGUSER": "env"}) == {
        "PGHOST": "db.example",
        "PGPORT": "6543",
    }


def test_sasl_without_a_user_name_or_password_is_refused_by_name(monkeypatch, capsys):
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "PLAIN")
    assert main(["tail"]) == 2
    err = capsys.readouterr().err
    assert "KAFKA_SASL_USERNAME: required with a SASL_* protocol" in err
    assert "KAFKA_SASL_PASSWORD: required with a SASL_* protocol" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("given", ["debug", "Warning", " info "])
def test_log_level_is_accepted_in_any_case(monkeypatch, given):
    monkeypatch.setenv("LOG_LEVEL", given)
    assert load_settings().log_level == given.strip().upper()


def test_settings_shows_where_each_value_came_from(monkeypatch, tmp_path, capsys):
    (tmp_path / ".env").write_text("KAFKA_TOPIC=from-file\nKAFKA_DLQ_TOPIC=from-file.dlq\n")
    monkeypatch.setenv("KAFKA_DLQ_TOPIC", "from-env.dlq")
    assert main(["settings"]) == 0
    lines = {line.split("=")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["KAFKA_TOPIC"].split() == ["KAFKA_TOPIC=from-file", "#", ".env"]
    assert lines["KAFKA_DLQ_TOPIC"].split() == ["KAFKA_DLQ_TOPIC=from-env.dlq", "#", "environment"]
    assert lines["KAFKA_CONSUMER_GROUP"].split() == [
        "KAFKA_CONSUMER_GROUP=heartbeat-consumer",
        "#",
        "default",
    ]


# --- options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["stats", "--limit", "-1"], "--limit"),
        (["stats", "--window", "0"], "--window"),
        (["tail", "--max-messages", "0"], "--max-messages"),
        (["tail", "--idle-timeout", "nan"], "--idle-timeout"),
    ],
)
def test_an_option_out_of_range_is_a_usage_error_naming_it(capsys, args, option):
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: expected a" in err
    assert "Traceback" not in err


def test_migrate_rollback_refuses_zero_steps_and_more_steps_than_are_applied():
    from heartbeat.errors import UsageError
    from heartbeat.migrations import choose_rollback

    with pytest.raises(UsageError, match="--steps must be at least 1"):
        choose_rollback([], 0)
    with pytest.raises(UsageError, match="--steps 2 is more than the 1 applied"):
        choose_rollback(["0001"], 2)


def test_output_cut_short_by_a_closed_pipe_is_not_a_traceback(tmp_path):
    reader = subprocess.Popen(
        [sys.executable, "-m", "heartbeat", "settings"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not _is_setting(k)},
    )
    assert reader.stdout is not None
    reader.stdout.close()  # as `| head -0` would
    _, err = reader.communicate(timeout=60)
    assert reader.returncode == 0
    assert b"Traceback" not in err


def test_metrics_port_0_picks_a_free_port_and_logs_it(caplog):
    from heartbeat.metrics import new_registry
    from heartbeat.server import Health, MetricsServer

    caplog.set_level("INFO", logger="heartbeat.server")
    server = MetricsServer("127.0.0.1", 0, new_registry(), Health((), 60)).start()
    try:
        assert server.port > 0
        assert f"on port {server.port}" in caplog.text
    finally:
        server.stop()


# --- the operator started on its own (python -m heartbeat_operator) ---------------------------


class _Connections:
    """Stands in for ``Kube.connect``: counts connections and closes."""

    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0

    def connect(self) -> _Connections:
        self.opened += 1
        return self

    def close(self) -> None:
        self.closed += 1


def test_the_operator_on_a_busy_metrics_port_is_one_line_naming_it_and_exits_1(busy_port, tmp_path):
    environment = {"METRICS_HOST": "127.0.0.1", "METRICS_PORT": str(busy_port)}
    done = subprocess.run(
        [sys.executable, "-m", "heartbeat_operator"],
        env={k: v for k, v in os.environ.items() if not _is_setting(k)} | environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1
    assert f"METRICS_PORT {busy_port} is already in use on 127.0.0.1" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_operator_on_a_busy_metrics_port_connects_to_nothing(busy_port, monkeypatch):
    from heartbeat.errors import MetricsPortUnavailable
    from heartbeat_operator import __main__ as operator_main

    kube = _Connections()
    monkeypatch.setattr(operator_main.Kube, "connect", kube.connect)
    monkeypatch.setenv("METRICS_HOST", "127.0.0.1")
    monkeypatch.setenv("METRICS_PORT", str(busy_port))
    with pytest.raises(MetricsPortUnavailable):
        operator_main.run(load_settings())
    assert kube.opened == kube.closed


def test_the_operator_stopping_on_an_error_logs_one_line_without_a_traceback(monkeypatch, caplog):
    import kopf

    from heartbeat_operator import __main__ as operator_main

    def failing_run(**_: object) -> None:
        raise RuntimeError("the startup check failed")

    kube = _Connections()
    monkeypatch.setattr(operator_main.Kube, "connect", kube.connect)
    monkeypatch.setattr(kopf, "run", failing_run)
    monkeypatch.setenv("METRICS_HOST", "127.0.0.1")
    monkeypatch.setenv("METRICS_PORT", "0")
    caplog.set_level("INFO")
    assert operator_main.run(load_settings()) == 1
    errors = [record for record in caplog.records if record.levelname == "ERROR"]
    assert [record.getMessage() for record in errors] == [
        "the operator stopped: RuntimeError: the startup check failed"
    ]
    assert "Traceback" not in caplog.text
    assert kube.closed == 1


# --- offsets reset when Kafka fails half way ---------------------------------------------------


class _Offsets:
    """The consumer_offsets rows of one group: what ``heartbeat offsets reset`` reads and writes."""

    def __init__(self) -> None:
        self.written: list[object] = []

    def __enter__(self) -> _Offsets:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def query(self, _sql: str, _params: object) -> list[dict[str, object]]:
        from datetime import UTC, datetime

        return [{"partition": 0, "next_offset": 70, "updated_at": datetime.now(UTC)}]

    def execute(self, statements: list[tuple[str, dict[str, object]]]) -> None:
        self.written.extend(params["offsets"] for _, params in statements)


class _AdminThatCannotCommit:
    def __init__(self, _settings: object) -> None:
        pass

    def group(self, _group: str):
        from heartbeat.kafka import GroupState

        return GroupState("EMPTY", 0)

    def partitions(self, topic: str):
        from heartbeat.kafka import Partition

        return [Partition(topic, 0), Partition(topic, 1)]

    def log_bounds(self, partitions):
        return {p: (10, 100) for p in partitions}

    def commit(self, group: str, _offsets: object) -> None:
        from heartbeat.errors import KafkaUnavailable

        raise KafkaUnavailable(
            f"Kafka at k:9092 (KAFKA_BOOTSTRAP_SERVERS): cannot commit offsets of group {group}"
        )


def test_a_reset_that_kafka_cannot_commit_shows_the_moves_and_says_only_postgresql_moved(
    monkeypatch, capsys, logging_as_it_was
):
    import heartbeat.kafka
    import heartbeat.store

    store = _Offsets()
    monkeypatch.setattr(heartbeat.store, "Store", lambda *_, **__: store)
    monkeypatch.setattr(heartbeat.kafka, "GroupAdmin", _AdminThatCannotCommit)
    assert main(["offsets", "reset", "--to-earliest", "--group", "g"]) == 1
    assert store.written == [[10, 10]]
    out, err = capsys.readouterr()
    assert out.startswith("group g, topic heartbeats: moved to earliest\n")
    rows = [line.split()[:3] for line in out.splitlines()[3:]]
    assert rows == [["0", "70", "10"], ["1", "-", "10"]]
    [error] = err.splitlines()
    assert "ERROR" in error
    assert "PostgreSQL was reset, so the consumers resume from the new offsets" in error
    assert "the committed offsets in Kafka were not" in error
    assert error.endswith("KAFKA_BOOTSTRAP_SERVERS): cannot commit offsets of group g")
