"""What the pipeline stored, read with psql inside the PostgreSQL pod (`kubectl exec`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tests.support.kube import Kubectl

from .batches import Batch, DeadLetter, Row


@dataclass(frozen=True)
class Database:
    kube: Kubectl
    deployment: str
    user: str
    password: str
    name: str

    def query(self, sql: str) -> list[list[str]]:
        """Rows of `sql` as text fields; over TCP with the password, as the pipeline connects."""
        out = self.kube.exec(
            f"deployment/{self.deployment}",
            "env",
            f"PGPASSWORD={self.password}",
            "psql",
            "--no-psqlrc",
            "--quiet",
            "--tuples-only",
            "--no-align",
            "--field-separator=\t",
            "--set=ON_ERROR_STOP=1",
            "--host=127.0.0.1",
            f"--username={self.user}",
            f"--dbname={self.name}",
            "--command",
            sql,
        )
        return [line.split("\t") for line in out.splitlines() if line]

    def rows(self, batch: Batch) -> Counter[Row]:
        first, last = batch.customer_ids.start, batch.customer_ids.stop - 1
        found = self.query(
            "SELECT customer_id, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), "
            "heart_rate, coalesce(anomaly, '') FROM heartbeats "
            f"WHERE customer_id BETWEEN {first} AND {last}"
        )
        return Counter((int(c), ts, int(hr), flag) for c, ts, hr, flag in found)

    def dead_letters(self, batch: Batch) -> Counter[DeadLetter]:
        """(key, reason) of the refused messages of the batch's customers, one per message read."""
        found = self.query(
            "SELECT convert_from(key, 'UTF8'), reason FROM dead_letters "
            "WHERE key IS NOT NULL AND convert_from(key, 'UTF8') ~ '^[0-9]{1,9}$'"
        )
        keys = {str(c) for c in batch.customer_ids}
        return Counter((key, reason) for key, reason in found if key in keys)

    def applied_migrations(self) -> list[str]:
        return [row[0] for row in self.query("SELECT migration_id FROM _yoyo_migration ORDER BY 1")]

    def count(self, sql: str) -> int:
        return int(self.query(sql)[0][0])
