"""`--json` on the commands that print data, against the real PostgreSQL."""

from __future__ import annotations

import json

import pytest

from heartbeat.cli import main

pytestmark = pytest.mark.integration


def json_of(capsys, *argv: str) -> object:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_migrate_status_up_and_rollback_dry_run_print_json(world, capsys):
    status = json_of(capsys, "migrate", "status")
    assert status
    assert all(m["applied"] for m in status)
    assert json_of(capsys, "migrate", "up") == {"applied": []}
    newest = status[-1]["id"]
    assert json_of(capsys, "migrate", "rollback", "--dry-run") == {
        "dry_run": True,
        "rolled_back": [newest],
    }
    assert all(m["applied"] for m in json_of(capsys, "migrate", "status"))


def test_maintain_prints_one_json_object_saying_what_it_did(world, capsys):
    report = json_of(capsys, "maintain")
    assert report["skipped"] is False
    assert report["failed"] == []
    assert isinstance(report["done"], list)
