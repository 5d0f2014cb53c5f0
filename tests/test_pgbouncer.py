"""The app behind a private pgbouncer in transaction pooling mode.

Each transaction may run on a different server connection, so the
per-transaction context must not leak between them, and statements must
not rely on server-side prepares that pgbouncer before 1.21 cannot follow.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bastion.db import Database, TxContext
from bench.servers import PgBouncer
from tests.conftest import make_settings

pytestmark = pytest.mark.skipif(
    shutil.which("pgbouncer") is None and not Path("/usr/sbin/pgbouncer").exists(),
    reason="pgbouncer is not installed",
)


@pytest.fixture()
def bouncer_url(database_url):
    parts = urlsplit(database_url)
    bouncer = PgBouncer(
        server_port=parts.port or 5432,
        users=[parts.username or "postgres"],
    )
    # One server connection, so every transaction shares it and a leak
    # from one to the next would show.
    bouncer.start(pool_size=1)
    yield (
        f"postgresql://{parts.username or 'postgres'}@127.0.0.1:{bouncer.port}"
        f"{parts.path}"
    )
    bouncer.stop()


def test_api_works_through_pgbouncer(app, make_app, bouncer_url, factory, team):
    contact = factory.contact(team["member"])
    behind_bouncer = make_app(
        DATABASE_URL=bouncer_url,
        DB_PREPARE_THRESHOLD="off",
        # Two client connections take turns on pgbouncer's one server
        # connection, as many app connections share few in production.
        DB_POOL_MIN_SIZE="2",
        DB_POOL_MAX_SIZE="2",
        # The same key-encryption key, so the stored signing key verifies.
        JWT_KEY_ENCRYPTION_KEY=app.extensions[
            "bastion"
        ].settings.jwt_key_encryption_key,
    )
    client = behind_bouncer.test_client()
    url = f"/api/v1/contacts/{contact['id']}"

    # More requests than psycopg's default threshold of five, after which
    # it would prepare the statements on the server.
    statuses = [
        client.get(url, headers=team["member"].headers).status_code for _ in range(12)
    ]

    assert statuses == [200] * 12


def test_context_does_not_leak_through_pgbouncer(bouncer_url):
    db = Database(make_settings(bouncer_url, DB_PREPARE_THRESHOLD="off"))
    db.open()
    ctx = TxContext(account_id="22222222-2222-2222-2222-222222222222", user_id="u")
    try:
        for _ in range(6):
            with db.read(ctx) as cur:
                cur.execute("SELECT current_setting('bastion.account_id') AS value")
                assert cur.fetchone()["value"] == ctx.account_id
            with db.read() as cur:
                cur.execute(
                    "SELECT current_setting('bastion.account_id', true) AS value"
                )
                assert cur.fetchone()["value"] in (None, "")
    finally:
        db.close()
