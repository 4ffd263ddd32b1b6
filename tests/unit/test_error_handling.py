"""Every error the pipeline raises is handled above: by the command line, or where it happens.

The command line has one report per class of the error tree (exit code, what went wrong);
a class without one would reach the user as "unexpected", which these tests forbid.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import re
from pathlib import Path

import pytest

import heartbeat
from heartbeat import cli, errors
from heartbeat.errors import HeartbeatError, MessageRefused
from heartbeat.metrics import ProducerMetrics, new_registry
from heartbeat.server import Health
from heartbeat.settings import Settings, load_settings

PACKAGE = Path(heartbeat.__file__).parent


def _every_module() -> None:
    """Import every module of the package, so that every exception class is defined."""
    for module in pkgutil.iter_modules([str(PACKAGE)]):
        if module.name != "__main__":
            importlib.import_module(f"heartbeat.{module.name}")


def _tree(root: type[HeartbeatError] = HeartbeatError) -> list[type[HeartbeatError]]:
    found = []
    for child in root.__subclasses__():
        found += [child, *_tree(child)]
    return found


_every_module()
TREE = sorted(set(_tree()), key=lambda kind: kind.__name__)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    prefixes = {field.split("_")[0].upper() + "_" for field in Settings.model_fields}
    for name in list(os.environ):
        if name.startswith((*prefixes, "PG", "OPERATOR_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LOG_FORMAT", "text")
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_an_error_class_without_a_report_of_its_own_is_still_one_line_exit_1(monkeypatch, capsys):
    class Unforeseen(HeartbeatError):
        pass

    def fail(*_: object) -> int:
        raise Unforeseen("something new")

    monkeypatch.setattr(cli, "_show_settings", fail)
    assert cli.main(["settings"]) == 1
    err = capsys.readouterr().err
    assert "something new" in err
    assert "Traceback" not in err


def test_the_tree_holds_the_named_causes_of_a_fatal_error():
    fatal = {kind.__name__ for kind in TREE if issubclass(kind, errors.FatalError)}
    assert {
        "TopicNotCreated",
        "ConsumerFailed",
        "SchemaNotMigrated",
        "MigrationsFolderMissing",
        "NoRollbackStep",
    } <= fatal


@pytest.mark.parametrize("kind", TREE, ids=lambda kind: kind.__name__)
def test_every_error_class_has_its_own_report_on_the_command_line(kind):
    assert kind in cli.REPORTS, f"heartbeat.cli.REPORTS says nothing of {kind.__name__}"


def test_each_cause_of_a_fatal_error_is_reported_in_its_own_words():
    causes = [kind for kind in TREE if issubclass(kind, errors.FatalError)]
    causes.remove(errors.FatalError)
    words = [cli.REPORTS[kind][1] for kind in causes]
    assert all(words), [kind.__name__ for kind in causes if not cli.REPORTS[kind][1]]
    assert len(set(words)) == len(words)


def test_only_named_causes_are_raised_never_fatal_error_itself():
    raised = {
        f"{path.name}:{number}"
        for path in sorted(PACKAGE.glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\braise FatalError\b", line)
    }
    assert raised == set(), "raise one of FatalError's causes (heartbeat.errors)"


@pytest.mark.parametrize("kind", TREE, ids=lambda kind: kind.__name__)
def test_an_error_that_reaches_the_command_line_is_one_line_with_its_exit_code(
    kind, monkeypatch, capsys
):
    message = f"what went wrong with {kind.__name__}"

    def fail(*_: object) -> int:
        raise kind(message)

    monkeypatch.setattr(cli, "_show_settings", fail)
    code = cli.main(["settings"])
    err = capsys.readouterr().err
    expected = cli.EXIT_USAGE if issubclass(kind, errors.SettingsError | errors.UsageError) else 1
    assert code == expected
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert f"{cli.REPORTS[kind][1]}{message}" in lines[0]
    assert "unexpected" not in err
    assert "Traceback" not in err


class _RefusingProducer:
    """A Kafka producer whose client refuses every message outright, as for a too large one."""

    def __init__(self, *_: object, **__: object) -> None:
        self.offered = 0
        self.sent = 0  # taken to send: none
        self.acknowledged = 0

    def produce_all(self, topic: str, keys: list[bytes], values: list[bytes], **kwargs) -> None:
        for _ in values:
            self.offered += 1
            error = MessageRefused(f"cannot produce to {topic}: Broker: Message size too large")
            kwargs["on_refused"](str(error))

    def poll(self, *_: object) -> int:
        return 0

    def flush(self, *_: object) -> int:
        return 0


def test_a_reading_the_client_refuses_is_counted_as_not_delivered_and_the_producer_exits_1(
    monkeypatch, caplog
):
    from heartbeat import producer

    monkeypatch.setattr(producer, "KafkaProducer", _RefusingProducer)
    monkeypatch.setattr(producer, "ensure_topics", lambda *_: None)
    registry = new_registry()
    app = producer.ProducerApp(
        load_settings(producer_count=5, producer_rate=0),
        metrics=ProducerMetrics(registry),
        health=Health(("kafka",), 30.0),
    )
    with caplog.at_level(logging.ERROR, logger="heartbeat"):
        assert app.run() == 1
    assert registry.get_sample_value("heartbeat_produce_errors_total") == 5
    assert app.failed == 5
    refusals = [
        r.getMessage() for r in caplog.records if "Message size too large" in r.getMessage()
    ]
    assert len(refusals) == 1, "the first refusal is logged, not every one"
