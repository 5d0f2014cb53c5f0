"""Which of this release's migrations the database has applied.

``/readyz`` calls this so an instance takes no traffic until the schema it
was built for is in place. Migrations the database has but this release does
not ship are fine: during a rolling deploy the old release keeps serving on
the expanded schema.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from bastion.db import Database
from bastion.migrate import MIGRATION_TABLE


class SchemaService:
    """Compare the migrations this release ships with those applied."""

    def __init__(self, db: Database, migration_ids: Sequence[str]) -> None:
        self.db = db
        self.migration_ids = tuple(migration_ids)

    def pending_migrations(self) -> list[str]:
        """Return the ids of this release's migrations not yet applied."""
        with self.db.read() as cur:
            cur.execute(
                "SELECT to_regclass(%(table)s) IS NOT NULL AS migrated",
                {"table": MIGRATION_TABLE},
            )
            row = cur.fetchone()
            applied: set[str] = set()
            if row is not None and row["migrated"]:
                cur.execute(
                    sql.SQL(
                        """
                        SELECT migration_id
                        FROM {table}
                        """
                    ).format(table=sql.Identifier(MIGRATION_TABLE))
                )
                applied = {r["migration_id"] for r in cur.fetchall()}

        return [m for m in self.migration_ids if m not in applied]
