"""The command line itself: lag and reset arithmetic, help with defaults, completion, --json."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from datetime import UTC, datetime

import pytest

from heartbeat.cli import _parser, main
from heartbeat.completion import script
from heartbeat.kafka import Partition
from heartbeat.lag import Stored, compute
from heartbeat.offsets import Move, Target, plan

T = "heartbeats"
PARTS = [Partition(T, 0), Partition(T, 1), Partition(T, 2)]
BOUNDS = {PARTS[0]: (0, 100), PARTS[1]: (40, 90), PARTS[2]: (0, 0)}
AT = datetime(2026, 1, 1, 11, tzinfo=UTC)


def test_lag_counts_from_the_stored_offset_and_from_the_log_start_when_retention_passed_it():
    stored = {0: Stored(70, AT), 1: Stored(10, AT)}
    rows = compute(PARTS, BOUNDS, stored, "earliest")
    assert [(r.partition, r.stored, r.lag) for r in rows] == [
        (0, 70, 30),
        (1, 10, 50),
        (2, None, 0),
    ]


@pytest.mark.parametrize(("reset", "lag"), [("earliest", 50), ("latest", 0)])
def test_lag_of_a_partition_with_nothing_stored_follows_auto_offset_reset(reset, lag):
    [row] = compute([PARTS[1]], BOUNDS, {}, reset)
    assert (row.stored, row.written_at, row.lag) == (None, None, lag)


def test_reset_plans_move_to_the_log_start_the_end_or_the_first_offset_at_a_time():
    stored = {0: 70, 1: 60}
    earliest = plan(PARTS, BOUNDS, stored, Target("earliest"))
    assert earliest == [Move(0, 70, 0), Move(1, 60, 40), Move(2, None, 0)]
    assert [m.new for m in plan(PARTS, BOUNDS, stored, Target("latest"))] == [100, 90, 0]
    at = {PARTS[0]: 55, PARTS[1]: None, PARTS[2]: None}  # None: no message at or after it
    moves = plan(PARTS, BOUNDS, stored, Target("datetime", AT), at)
    assert [m.new for m in moves] == [55, 90, 0]


def test_help_of_every_option_shows_its_default_or_the_setting_it_comes_from(capsys):
    with pytest.raises(SystemExit):
        main(["stats", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 3600.0)" in text
    assert "(default: 50)" in text
    with pytest.raises(SystemExit):
        main(["produce", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: PRODUCER_RATE or 100.0)" in text
    assert "(default: PRODUCER_SEED)" in text
    assert "None" not in text


def test_every_option_of_every_command_is_described():
    def walk(parser, name):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    yield from walk(sub, f"{name} {sub_name}")
            else:
                yield name, action

    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, action in walk(_parser(), "heartbeat")
        if not action.help
    ]
    assert missing == []


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_scripts_name_every_command_and_the_reset_options(shell, capsys):
    assert main(["completion", shell]) == 0
    out = capsys.readouterr().out
    assert out == script(_parser(), shell)
    for word in ("produce", "consume", "lag", "offsets", "--to-datetime", "--dry-run"):
        assert word in out
    binary = shutil.which(shell)
    if binary:  # a syntax check by the shell itself where it is installed
        result = subprocess.run([binary, "-n"], input=out, text=True, capture_output=True)
        assert result.returncode == 0, result.stderr


def test_bash_completion_completes_a_subcommand_and_an_option():
    if not shutil.which("bash"):
        pytest.skip("no bash")
    completion = script(_parser(), "bash")
    probe = (
        f"{completion}\n"
        'COMP_WORDS=(heartbeat off); COMP_CWORD=1; _shtab_heartbeat; echo "${COMPREPLY[@]}"\n'
        "COMP_WORDS=(heartbeat offsets reset --to-e); COMP_CWORD=3; _shtab_heartbeat;"
        ' echo "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(["bash"], input=probe, text=True, capture_output=True, check=True)
    assert result.stdout.split("\n")[:2] == ["offsets", "--to-earliest"]


def test_to_datetime_without_an_offset_is_a_usage_error_naming_the_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["offsets", "reset", "--to-datetime", "2026-01-01T11:00:00"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--to-datetime" in err
    assert "no UTC offset" in err


def test_reset_needs_exactly_one_target(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["offsets", "reset", "--to-earliest", "--to-latest"])
    assert exit_.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_settings_json_gives_each_value_and_where_it_came_from(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("PRODUCER_RATE=7\n")
    monkeypatch.setenv("KAFKA_TOPIC", "from-env")
    assert main(["settings", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["KAFKA_TOPIC"]["value"] == "from-env"
    assert shown["PRODUCER_RATE"] == {"value": 7.0, "from": shown["PRODUCER_RATE"]["from"]}
    assert ".env" in shown["PRODUCER_RATE"]["from"]
    assert "env" in shown["KAFKA_TOPIC"]["from"]
    assert shown["PRODUCER_CUSTOMERS"]["from"] == "default"
