"""Listing and search plans at 200,000 contacts, in a database of their own.

The rows are loaded with COPY as a superuser. The plans are taken as the
application role, under row-level security, for the statements that the
contact service builds. The search runs inside the ``search_contacts``
definer function, so its inner plan comes from auto_explain.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from bastion.pagination import Position
from bastion.services.contacts import list_query
from tests.conftest import database_url_for, drop_database, prepare_database

ROWS = 200_000
BIG_ACCOUNT_ROWS = 150_000
# Every RARE_EVERY-th contact of the big account works at the searched company.
RARE_EVERY = 10_000
START = datetime(2024, 1, 1, tzinfo=UTC)


def plan_nodes(plan):
    """Yield every node of a JSON plan tree."""
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


def scans_of(plan):
    return [
        (node["Node Type"], node.get("Relation Name"), node.get("Index Name"))
        for node in plan_nodes(plan)
        if "Scan" in node["Node Type"]
    ]


@pytest.fixture(scope="module")
def scale_db():
    """A migrated database with 200,000 contacts in two accounts."""
    name = os.environ.get("TEST_DATABASE_NAME", "bastion_test") + "_scale"
    admin_url = database_url_for(name)
    app_url = prepare_database(admin_url)
    big, small = uuid.uuid4(), uuid.uuid4()

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO accounts (id, name) VALUES (%s, 'big'), (%s, 'small')",
            (big, small),
        )
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY contacts (account_id, name, email, company, created_at)"
                " FROM STDIN"
            ) as copy,
        ):
            for n in range(ROWS):
                account = big if n < BIG_ACCOUNT_ROWS else small
                company = "Zephyrine Labs" if n % RARE_EVERY == 0 else f"Co {n % 97}"
                copy.write_row(
                    (
                        account,
                        f"Person {n}",
                        f"person{n}@example.com",
                        company,
                        START + timedelta(seconds=n),
                    )
                )
        conn.execute("ANALYZE contacts")
        middle = conn.execute(
            "SELECT created_at, id FROM contacts WHERE account_id = %s"
            " ORDER BY created_at, id OFFSET %s LIMIT 1",
            (big, BIG_ACCOUNT_ROWS // 2),
        ).fetchone()

    yield {
        "admin_url": admin_url,
        "app_url": app_url,
        "account_id": str(big),
        "middle": Position(middle[0], middle[1]),
    }
    drop_database(admin_url)


def explain_as_app(scale_db, query, params):
    """Return the top-level plan and the plans of nested statements."""
    nested = []

    def collect(diagnostic):
        message = diagnostic.message_primary or ""
        if "plan:" in message:
            nested.append(json.loads(message.split("plan:", 1)[1])["Plan"])

    with psycopg.connect(scale_db["admin_url"]) as conn:
        conn.add_notice_handler(collect)
        # auto_explain reports the plans of statements run inside functions.
        conn.execute("LOAD 'auto_explain'")
        for setting, value in {
            "auto_explain.log_min_duration": "0",
            "auto_explain.log_nested_statements": "on",
            "auto_explain.log_format": "json",
            "auto_explain.log_level": "notice",
        }.items():
            conn.execute("SELECT set_config(%s, %s, false)", (setting, value))
        app_role = psycopg.conninfo.conninfo_to_dict(scale_db["app_url"])["user"]
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(app_role)))
        conn.execute(
            "SELECT set_config('bastion.account_id', %s, true)",
            (scale_db["account_id"],),
        )
        explained = conn.execute(
            sql.SQL("EXPLAIN (FORMAT JSON) {}").format(query), params
        ).fetchone()[0]
        rows = conn.execute(query, params).fetchall()
        conn.rollback()
    return explained[0]["Plan"], nested, rows


def assert_no_seq_scan(plans):
    for plan in plans:
        for node_type, relation, _ in scans_of(plan):
            assert not (node_type == "Seq Scan" and relation == "contacts"), plan


def test_first_page_uses_list_index(scale_db):
    query, params = list_query(
        account_id=scale_db["account_id"], limit=50, after=None, q=None
    )

    plan, _, rows = explain_as_app(scale_db, query, params)

    print("first page:", scans_of(plan))
    assert_no_seq_scan([plan])
    assert ("Index Scan", "contacts", "contacts_account_list_idx") in scans_of(plan)
    assert len(rows) == 51


def test_deep_page_uses_list_index(scale_db):
    query, params = list_query(
        account_id=scale_db["account_id"],
        limit=50,
        after=scale_db["middle"],
        q=None,
    )

    plan, _, rows = explain_as_app(scale_db, query, params)

    print("deep page:", scans_of(plan))
    assert_no_seq_scan([plan])
    assert ("Index Scan", "contacts", "contacts_account_list_idx") in scans_of(plan)
    assert rows[0][1] == f"Person {BIG_ACCOUNT_ROWS // 2 + 1}"


def test_search_uses_trigram_index(scale_db):
    query, params = list_query(
        account_id=scale_db["account_id"], limit=50, after=None, q="ZEPHYRINE"
    )

    plan, nested, rows = explain_as_app(scale_db, query, params)

    inner = [scans_of(nested_plan) for nested_plan in nested]
    print("search:", scans_of(plan), "inside search_contacts:", inner)
    assert_no_seq_scan([plan, *nested])
    assert [scan[0] for scan in scans_of(plan)] == ["Function Scan"]
    assert any(
        ("Bitmap Index Scan", None, "contacts_search_trgm_idx") in scans
        for scans in inner
    )
    assert len(rows) == BIG_ACCOUNT_ROWS // RARE_EVERY
