"""If-Match on a PATCH that changes nothing is still checked.

Found by the schemathesis run: an empty PATCH returned 200 regardless of
If-Match, so a malformed tag was not a 400 and a stale one not a 412.
"""

from __future__ import annotations


def test_empty_user_patch_checks_if_match(client, team):
    url = f"/api/v1/users/{team['member'].id}"
    headers = team["owner"].headers

    malformed = client.patch(url, json={}, headers={**headers, "If-Match": "UpR"})
    stale = client.patch(url, json={}, headers={**headers, "If-Match": '"999"'})
    current = client.get(url, headers=headers).headers["ETag"]
    fresh = client.patch(url, json={}, headers={**headers, "If-Match": current})

    assert malformed.status_code == 400
    assert stale.status_code == 412
    assert fresh.status_code == 200
    assert fresh.headers["ETag"] == current


def test_empty_contact_patch_checks_if_match(client, team, factory):
    member = team["member"]
    contact = factory.contact(member)
    url = f"/api/v1/contacts/{contact['id']}"

    stale = client.patch(url, json={}, headers={**member.headers, "If-Match": '"999"'})
    current = client.get(url, headers=member.headers).headers["ETag"]
    fresh = client.patch(url, json={}, headers={**member.headers, "If-Match": current})

    assert stale.status_code == 412
    assert fresh.status_code == 200
    assert fresh.headers["ETag"] == current
