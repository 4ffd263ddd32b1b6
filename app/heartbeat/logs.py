"""Logging set-up; only entry points call ``configure``."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from pythonjsonlogger.json import JsonFormatter

from heartbeat.errors import SettingsError
from heartbeat.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure(settings: Settings) -> None:
    """Log to stderr, and to LOG_FILE when set; ``SettingsError`` if LOG_FILE cannot be opened."""
    formatter: logging.Formatter
    if settings.log_format == "json":
        formatter = JsonFormatter(
            JSON_FIELDS, rename_fields={"levelname": "level", "asctime": "time"}
        )
    else:
        formatter = logging.Formatter(TEXT_FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if settings.log_file is not None:
        handlers.append(_file_handler(settings.log_file, settings))
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(settings.log_level)
    # The pool logs every checkout and yoyo every step at INFO: keep them to warnings
    # unless DEBUG is asked for (heartbeat's own lines say what matters).
    quiet = logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING
    for name in ("psycopg.pool", "yoyo"):
        logging.getLogger(name).setLevel(quiet)


def _file_handler(path: Path, settings: Settings) -> logging.Handler:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return logging.handlers.RotatingFileHandler(
            path,
            maxBytes=settings.log_file_max_bytes,
            backupCount=settings.log_file_backup_count,
            encoding="utf-8",
        )
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
        raise SettingsError(
            f"invalid settings:\n  LOG_FILE: cannot open {str(path)!r}: {exc.strerror}{where}"
        ) from None
