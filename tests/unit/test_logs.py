"""Logging: text or JSON, level, rotating file, and no secrets."""

import json
import logging

import pytest

from heartbeat import logs
from heartbeat.settings import Settings

pytestmark = pytest.mark.usefixtures("logging_as_it_was")


def test_json_logs_rotate_by_size_in_the_configured_file(tmp_path):
    path = tmp_path / "logs" / "heartbeat.log"
    settings = Settings(
        _env_file=None,
        log_format="json",
        log_file=path,
        log_file_max_bytes=2048,
        log_file_backup_count=2,
    )
    logs.configure(settings)
    log = logging.getLogger("heartbeat.test")
    for i in range(200):
        log.info("message number %d", i)
    for handler in logging.getLogger().handlers:
        handler.flush()
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["heartbeat.log", "heartbeat.log.1", "heartbeat.log.2"]
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["message"] == "message number 199"
    assert last["level"] == "INFO"
    assert last["name"] == "heartbeat.test"


def test_level_setting_filters_lower_levels(tmp_path):
    path = tmp_path / "h.log"
    logs.configure(Settings(_env_file=None, log_level="WARNING", log_file=path))
    logging.getLogger("heartbeat.test").info("quiet")
    logging.getLogger("heartbeat.test").warning("loud")
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = path.read_text()
    assert "loud" in text
    assert "quiet" not in text
