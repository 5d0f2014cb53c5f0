"""The bare baseline: Flask and psycopg_pool doing one SELECT, nothing else.

No token, no caller lookup, no transaction block, no logging, no headers
beyond Flask's own: ``GET /contacts/<id>`` reads the row of the account in
``BENCH_ACCOUNT_ID`` and returns it as JSON. It runs under the same
gunicorn.conf.py as Bastion, with the same pool size.

    gunicorn -c gunicorn.conf.py bench.bare_app:app
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, abort, jsonify
from flask.typing import ResponseReturnValue
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

SELECT_CONTACT = """
    SELECT id, name, email, phone, company, notes, tags, created_by, version,
           created_at, updated_at
    FROM contacts
    WHERE id = %(contact_id)s
      AND account_id = %(account_id)s
      AND deleted_at IS NULL
"""

app = Flask(__name__)
account_id = os.environ["BENCH_ACCOUNT_ID"]
# Read as Bastion reads it: "off" never prepares (behind an old pgbouncer).
threshold = os.environ.get("DB_PREPARE_THRESHOLD", "5")
pool: ConnectionPool[Any] = ConnectionPool(
    os.environ["DATABASE_URL"],
    min_size=1,
    max_size=int(os.environ.get("DB_POOL_MAX_SIZE", "4")),
    kwargs={
        "autocommit": True,
        "row_factory": dict_row,
        "prepare_threshold": None if threshold == "off" else int(threshold),
    },
    open=True,
)


@app.get("/contacts/<uuid:contact_id>")
def get_contact(contact_id: Any) -> ResponseReturnValue:
    with pool.connection() as conn:
        row = conn.execute(
            SELECT_CONTACT, {"contact_id": contact_id, "account_id": account_id}
        ).fetchone()
    if row is None:
        abort(404)
    return jsonify(row)


@app.get("/readyz")
def readyz() -> ResponseReturnValue:
    with pool.connection() as conn:
        conn.execute("SELECT 1")
    return jsonify({"status": "ready"})
