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


def test_dlq_redrive_prints_what_it_sent_as_json(world, capsys):
    from datetime import UTC, datetime

    from tests.integration.test_dlq_command import consume_as_a_consumer_would

    world.produce([(b"1", b"not json")])
    records = world.topic_records(count=1)
    consume_as_a_consumer_would(world, records, datetime.now(UTC))
    source = f"{records[0].topic}:{records[0].partition}:{records[0].offset}"

    planned = json_of(capsys, "dlq", "redrive", "--all", "--dry-run")
    assert planned == {
        "topic": world.settings.kafka_topic,
        "dry_run": True,
        "sent": [source],
        "redriven": 0,
        "refused": [],
    }
    done = json_of(capsys, "dlq", "redrive", "--all")
    assert (done["dry_run"], done["sent"], done["redriven"]) == (False, [source], 1)
    assert len(world.topic_records(count=2)) == 2  # the original and the re-driven copy
    assert json_of(capsys, "dlq", "redrive", "--all")["sent"] == []  # nothing pending now
