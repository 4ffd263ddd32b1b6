"""Schema migrations: yoyo-migrations reading the SQL files in ``sql/``.

Each migration is ``NNNN.name.sql`` with an optional ``NNNN.name.rollback.sql``
down step. yoyo records what was applied in its own tables and takes a lock,
so two pods migrating at once do not race.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yoyo import read_migrations

from heartbeat import store
from heartbeat.errors import MigrationsFolderMissing, NoRollbackStep, UsageError

logger = logging.getLogger(__name__)


def default_dir() -> Path:
    """The migrations shipped in the wheel, or ``sql/`` of a source checkout."""
    packaged = Path(__file__).parent / "sql"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "sql"


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    id: str
    applied: bool
    reversible: bool


class Migrator:
    """Applies, lists and rolls back the migrations through yoyo's public backend API."""

    def __init__(
        self, conninfo: str, directory: Path | None = None, connect_timeout: float = 5.0
    ) -> None:
        self.directory = directory or default_dir()
        if not self.directory.is_dir():
            raise MigrationsFolderMissing(
                f"migrations folder {self.directory} does not exist (MIGRATIONS_DIR)"
            )
        self._migrations = read_migrations(str(self.directory))
        self._backend = store.migration_backend(conninfo, connect_timeout=connect_timeout)
        self._backend.init_database()

    def close(self) -> None:
        self._backend.connection.close()

    def __enter__(self) -> Migrator:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def status(self) -> list[MigrationStatus]:
        return [
            MigrationStatus(m.id, self._backend.is_applied(m), _has_down(m))
            for m in self._migrations
        ]

    def apply(self) -> list[str]:
        """Apply every pending migration; returns their ids."""
        with self._backend.lock():
            pending = self._backend.to_apply(self._migrations)
            self._backend.apply_migrations(pending)
        for migration in pending:
            logger.info("applied migration %s", migration.id)
        return [m.id for m in pending]

    def plan_rollback(self, steps: int) -> list[str]:
        """The last ``steps`` applied migration ids, newest first, that a rollback undoes."""
        applied = self._backend.to_rollback(self._migrations)
        return [m.id for m in choose_rollback(list(applied), steps)]

    def rollback(self, steps: int) -> list[str]:
        """Roll back the last ``steps`` applied migrations, newest first."""
        with self._backend.lock():
            chosen = choose_rollback(list(self._backend.to_rollback(self._migrations)), steps)
            self._backend.rollback_migrations(chosen)
        for migration in chosen:
            logger.info("rolled back migration %s", migration.id)
        return [m.id for m in chosen]


def choose_rollback(applied: list[Any], steps: int) -> list[Any]:
    """The newest ``steps`` of ``applied`` (newest first), refusing what cannot be undone."""
    if steps < 1:
        raise UsageError("--steps must be at least 1")
    if steps > len(applied):
        raise UsageError(
            f"--steps {steps} is more than the {len(applied)} applied migration(s); nothing done"
        )
    chosen = applied[:steps]
    for migration in chosen:
        if not _has_down(migration):
            raise NoRollbackStep(f"migration {migration.id} has no rollback step; nothing done")
    return chosen


def _has_down(migration: Any) -> bool:
    path = Path(migration.path)
    return path.with_name(path.stem + ".rollback.sql").exists()
