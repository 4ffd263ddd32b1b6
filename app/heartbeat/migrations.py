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
from yoyo.backends.core.postgresql import PostgresqlPsycopgBackend
from yoyo.connections import parse_uri

from heartbeat import store
from heartbeat.errors import FatalError

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


class _Backend(PostgresqlPsycopgBackend):  # type: ignore[misc]
    """yoyo's psycopg 3 backend, connecting through the project's own conninfo rules."""

    conninfo = ""
    connect_timeout = 5.0

    def connect(self, dburi: Any) -> Any:
        return store.connect(self.conninfo, autocommit=True, connect_timeout=self.connect_timeout)


class Migrator:
    def __init__(
        self, conninfo: str, directory: Path | None = None, connect_timeout: float = 5.0
    ) -> None:
        self.directory = directory or default_dir()
        if not self.directory.is_dir():
            raise FatalError(f"migrations folder {self.directory} does not exist (MIGRATIONS_DIR)")
        backend_class = type(
            "Backend", (_Backend,), {"conninfo": conninfo, "connect_timeout": connect_timeout}
        )
        self._backend = backend_class(parse_uri("postgresql+psycopg:///"), "_yoyo_migration")
        self._backend.init_database()
        self._migrations = read_migrations(str(self.directory))

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

    def rollback(self, steps: int) -> list[str]:
        """Roll back the last ``steps`` applied migrations, newest first."""
        if steps < 1:
            raise ValueError("steps must be at least 1")
        with self._backend.lock():
            applied = self._backend.to_rollback(self._migrations)
            chosen = applied[:steps]
            for migration in chosen:
                if not _has_down(migration):
                    raise FatalError(f"migration {migration.id} has no rollback step")
            self._backend.rollback_migrations(chosen)
        for migration in chosen:
            logger.info("rolled back migration %s", migration.id)
        return [m.id for m in chosen]


def _has_down(migration: Any) -> bool:
    path = Path(migration.path)
    return path.with_name(path.stem + ".rollback.sql").exists()
