"""Phone numbers through the API: an admin configures a number (E.164, its carrier settings
naming secrets, never values), viewers read it, nobody else sees it; and the organization's
dialing policy, the toll-fraud guard's rule for outbound calls and transfers."""

from __future__ import annotations

import secrets

from phone_api import add_number, publish_flow

from flows.telephony import DestinationRefused, DialingPolicy, check_destination

FLOW = {"name": "phone-hello", "nodes": [{"id": "start", "type": "start"},
                                         {"id": "hi", "type": "say", "text": "Hello."}],
        "edges": [{"from": "start", "to": "hi"}]}


def fresh_number() -> str:
    return f"+1555{secrets.randbelow(10**7):07d}"


async def test_an_admin_configures_a_number_and_only_its_organization_sees_it(make_org, pool):
    org = await make_org()
    flow_id = await publish_flow(org.client, FLOW)
    spaced = fresh_number()
    typed = f"{spaced[:2]} {spaced[2:5]} {spaced[5:8]} {spaced[8:]}"
    made = await add_number(org.client, number=typed, flow_id=flow_id, settings={
        "account_sid": "AC" + "0" * 32, "auth_token_secret": "TWILIO_AUTH_TOKEN"})
    assert made["number"] == spaced and made["provider"] == "twilio"
    assert made["settings"] == {"account_sid": "AC" + "0" * 32,
                                "auth_token_secret": "TWILIO_AUTH_TOKEN"}
    stored = await pool.fetchrow("SELECT org_id, number, settings FROM phone_numbers"
                                 " WHERE id = $1", made["id"])
    assert (stored["org_id"], stored["number"]) == (org.id, spaced)

    listed = (await org.client.get("/v1/phone-numbers")).json()["items"]
    assert [n["id"] for n in listed] == [made["id"]]
    other = await make_org()
    assert (await other.client.get(f"/v1/phone-numbers/{made['id']}")).status_code == 404
    assert (await other.client.delete(f"/v1/phone-numbers/{made['id']}")).status_code == 404
    assert (await other.client.get("/v1/phone-numbers")).json()["items"] == []
    other_flow = await publish_flow(other.client, FLOW)
    clash = await other.client.post("/v1/phone-numbers", json={
        "number": spaced, "flow_id": other_flow, "provider": "livekit"})
    assert clash.status_code == 409 and "number" in clash.json()["message"]

    second_flow = await publish_flow(org.client, FLOW)
    changed = await org.client.patch(f"/v1/phone-numbers/{made['id']}", json={
        "flow_id": second_flow,
        "settings": {"account_sid": "AC" + "1" * 32, "auth_token_secret": "TW_TOKEN_2"}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["flow_id"] == second_flow
    assert changed.json()["settings"]["auth_token_secret"] == "TW_TOKEN_2"
    assert (await org.client.get(f"/v1/phone-numbers/{made['id']}/calls")).json() == {
        "items": []}
    assert (await org.client.delete(f"/v1/phone-numbers/{made['id']}")).status_code == 204
    assert (await org.client.get(f"/v1/phone-numbers/{made['id']}")).status_code == 404
    assert await pool.fetchval("SELECT count(*) FROM phone_numbers WHERE id = $1",
                               made["id"]) == 0


async def test_viewers_read_numbers_and_cannot_change_them(make_org, pool):
    admin = await make_org()
    flow_id = await publish_flow(admin.client, FLOW)
    made = await add_number(admin.client, number=fresh_number(), flow_id=flow_id,
                            provider="livekit")
    from db.api_clients import insert_api_client, new_token

    token = new_token()
    await insert_api_client(pool, org_id=admin.id, name="viewer", token=token, role="viewer")
    headers = {"Authorization": f"Bearer {token}"}
    listed = await admin.client.get("/v1/phone-numbers", headers=headers)
    assert listed.status_code == 200 and [n["id"] for n in listed.json()["items"]] == [made["id"]]
    refused = await admin.client.post("/v1/phone-numbers", headers=headers, json={
        "number": fresh_number(), "flow_id": flow_id, "provider": "livekit"})
    assert refused.status_code == 403
    assert (await admin.client.delete(f"/v1/phone-numbers/{made['id']}",
                                      headers=headers)).status_code == 403
    assert (await admin.client.get("/v1/org/dialing-policy",
                                   headers=headers)).status_code == 403


async def test_bad_numbers_and_settings_are_refused_naming_the_field(make_org, pool):
    org = await make_org()
    flow_id = await publish_flow(org.client, FLOW)
    cases = [
        ({"number": "5551230000"}, "number"),                      # not E.164
        ({"number": "+1 555"}, "number"),                           # too short to be a number
        ({"provider": "skype"}, "provider"),
        ({"settings": {"auth_token_secret": "s3cr3t value!"}}, "settings.auth_token_secret"),
        ({"settings": {"auth_token_secret": "TOKEN"}}, "settings.account_sid"),  # twilio needs it
        ({"settings": {"account_sid": {"nested": 1}, "auth_token_secret": "T"}},
         "settings.account_sid"),
    ]
    for change, field in cases:
        body = {"number": fresh_number(), "flow_id": flow_id, "provider": "twilio",
                "settings": {"account_sid": "AC1", "auth_token_secret": "TOKEN"}, **change}
        refused = await org.client.post("/v1/phone-numbers", json=body)
        assert refused.status_code == 422, (change, refused.text)
        assert field in refused.text, (field, refused.text)
    missing_flow = await org.client.post("/v1/phone-numbers", json={
        "number": fresh_number(), "flow_id": "00000000-0000-0000-0000-000000000000",
        "provider": "livekit"})
    assert missing_flow.status_code == 404 and "flow_id" in missing_flow.json()["message"]
    assert await pool.fetchval("SELECT count(*) FROM phone_numbers WHERE org_id = $1",
                               org.id) == 0


async def test_the_dialing_policy_is_stored_and_decides_destinations(make_org):
    org = await make_org()
    empty = (await org.client.get("/v1/org/dialing-policy")).json()
    assert empty["allowed_country_codes"] == [] and empty["allow_premium"] is False
    put = await org.client.put("/v1/org/dialing-policy", json={
        "allowed_country_codes": ["+1"], "allowed_prefixes": ["+4420"], "allow_premium": False})
    assert put.status_code == 200, put.text
    assert put.json()["allowed_country_codes"] == ["1"]
    assert put.json()["allowed_prefixes"] == ["4420"]
    bad = await org.client.put("/v1/org/dialing-policy", json={"allowed_prefixes": ["44-20"]})
    assert bad.status_code == 422 and "allowed_prefixes[0]" in bad.text
    assert (await org.client.get("/v1/org/dialing-policy")).json()["allowed_prefixes"] == [
        "4420"]


def test_the_guard_refuses_unassigned_premium_and_unlisted_destinations():
    policy = DialingPolicy(allowed_country_codes=("1",), allowed_prefixes=("4420",))
    assert check_destination(policy, "+1 212 555 0123") == "+12125550123"
    assert check_destination(policy, "+442079460000") == "+442079460000"
    refusals = {"+19005551234": "premium_rate",   # US 900: premium rate
                "+15551230000": "unassigned",     # 555 is not an assigned area code
                "+33612345678": "not_allowed",    # France is not in the policy
                "+447911123456": "not_allowed",   # UK, but not the allowed London prefix
                "tel:12": "not_a_number"}
    for to, reason in refusals.items():
        try:
            check_destination(policy, to)
        except DestinationRefused as refused:
            assert refused.reason == reason, (to, refused.reason)
            assert refused.status == 403
        else:
            raise AssertionError(f"{to} was not refused")
    assert check_destination(DialingPolicy(("1",), (), True), "+19005551234") == "+19005551234"
    try:
        check_destination(DialingPolicy(), "+12125550123")
    except DestinationRefused as refused:
        assert refused.reason == "not_allowed"
    else:
        raise AssertionError("an empty policy allowed a call")
