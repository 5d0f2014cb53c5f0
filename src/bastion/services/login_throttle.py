"""Back-off after failed logins, per account and per client network.

Both locks grow: once a counter reaches its threshold, each further failure
doubles the lock, up to an hour. A locked login gets the same 401 as a wrong
password. These statements run only on the login and password-change paths,
never on the per-request caller lookup.
"""

from __future__ import annotations

import ipaddress

from bastion.db import Cursor

# Failed passwords before an account is locked. The counter resets on a
# successful login or a password reset.
ACCOUNT_LOCK_THRESHOLD = 5
ACCOUNT_LOCK_BASE_SECONDS = 30
LOCK_MAX_SECONDS = 3600
# The exponent is capped before power() so that a long run of failures can
# neither overflow the arithmetic nor make the lock shorter.
ACCOUNT_LOCK_MAX_DOUBLINGS = (
    LOCK_MAX_SECONDS // ACCOUNT_LOCK_BASE_SECONDS
).bit_length()

# Failed logins (unknown email or wrong password) from one client network
# before it is locked. The threshold is higher than the account's because
# many users can share one address behind NAT. The counter starts again
# after CLIENT_FAILURE_WINDOW_SECONDS without a failure.
CLIENT_LOCK_THRESHOLD = 20
CLIENT_LOCK_BASE_SECONDS = 60
CLIENT_FAILURE_WINDOW_SECONDS = 3600


def client_network(ip: str | None) -> str | None:
    """Return the network a client address is counted under, or None.

    An IPv6 client usually controls a whole /64, so the /64 is counted;
    an IPv4 address counts alone.
    """
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"{address.ipv4_mapped}/32"
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return f"{address}/32"


def is_client_locked(cur: Cursor, network: str | None) -> bool:
    """Return whether ``network`` is locked out of logging in."""
    if network is None:
        return False
    cur.execute(
        """
        SELECT 1
        FROM login_failures
        WHERE client_network = %(network)s
          AND locked_until > now()
        """,
        {"network": network},
    )
    return cur.fetchone() is not None


def record_client_failure(cur: Cursor, network: str | None) -> None:
    """Count a failed login from ``network`` and lock it past the threshold."""
    if network is None:
        return
    cur.execute(
        """
        INSERT INTO login_failures (client_network, failure_count, last_failure_at)
        VALUES (%(network)s, 1, now())
        ON CONFLICT (client_network) DO UPDATE
        SET failure_count = CASE
                WHEN login_failures.last_failure_at
                     < now() - make_interval(secs => %(window_seconds)s)
                THEN 1
                ELSE login_failures.failure_count + 1
            END,
            last_failure_at = now()
        RETURNING failure_count
        """,
        {"network": network, "window_seconds": CLIENT_FAILURE_WINDOW_SECONDS},
    )
    row = cur.fetchone()
    assert row is not None
    if row["failure_count"] < CLIENT_LOCK_THRESHOLD:
        return
    cur.execute(
        """
        UPDATE login_failures
        SET locked_until = now() + make_interval(secs => %(seconds)s)
        WHERE client_network = %(network)s
        """,
        {
            "network": network,
            "seconds": lock_seconds(
                row["failure_count"], CLIENT_LOCK_THRESHOLD, CLIENT_LOCK_BASE_SECONDS
            ),
        },
    )


def record_account_failure(cur: Cursor, user_id: str) -> None:
    """Count a wrong password for a user and lock them past the threshold."""
    cur.execute(
        """
        UPDATE users
        SET failed_login_count = failed_login_count + 1,
            locked_until = CASE
                WHEN failed_login_count + 1 >= %(threshold)s
                THEN now() + make_interval(secs => least(
                    %(max_seconds)s,
                    %(base_seconds)s * power(2, least(
                        failed_login_count + 1 - %(threshold)s,
                        %(max_doublings)s
                    ))
                ))
                ELSE locked_until
            END
        WHERE id = %(user_id)s
        """,
        {
            "user_id": user_id,
            "threshold": ACCOUNT_LOCK_THRESHOLD,
            "base_seconds": ACCOUNT_LOCK_BASE_SECONDS,
            "max_seconds": LOCK_MAX_SECONDS,
            "max_doublings": ACCOUNT_LOCK_MAX_DOUBLINGS,
        },
    )


def lock_seconds(failures: int, threshold: int, base_seconds: int) -> int:
    """Return the lock after ``failures`` failures: doubling, capped at an hour."""
    doublings = min(failures - threshold, 16)
    return int(min(LOCK_MAX_SECONDS, base_seconds * 2**doublings))


def purge_client_failures(cur: Cursor) -> int:
    """Delete counters whose window and lock are both over; return the count."""
    cur.execute(
        """
        DELETE FROM login_failures
        WHERE last_failure_at < now() - make_interval(secs => %(window_seconds)s)
          AND (locked_until IS NULL OR locked_until < now())
        """,
        {"window_seconds": CLIENT_FAILURE_WINDOW_SECONDS},
    )
    return cur.rowcount
