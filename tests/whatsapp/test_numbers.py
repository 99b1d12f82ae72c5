"""WhatsApp numbers through the API (admin): create, list, read, change, delete; the verification
token is never shown or stored in the clear; the secrets are names; Meta's handshake."""

from __future__ import annotations

import secrets

from db.whatsapp_numbers import hash_verify_token


async def test_an_admin_configures_a_number_and_meta_verifies_the_webhook(wa_org, pool,
                                                                         make_org):
    org = await wa_org()
    listed = (await org.api.get("/v1/channels/whatsapp/numbers")).json()["items"]
    assert [n["phone_number_id"] for n in listed] == [org.phone_number_id]
    number = listed[0]
    assert number["app_secret_secret"] == "meta_app_secret"
    assert number["access_token_secret"] == "meta_token"
    assert "verify_token" not in number and "verify_token_hash" not in number
    assert org.verify_token not in (await org.api.get(
        f"/v1/channels/whatsapp/numbers/{org.number_id}")).text
    stored = await pool.fetchrow("SELECT org_id, verify_token_hash FROM whatsapp_numbers"
                                 " WHERE id = $1", number["id"])
    assert stored["org_id"] == org.id
    assert stored["verify_token_hash"] == hash_verify_token(org.verify_token)

    # Meta's handshake: the token of a configured number, the challenge echoed as plain text.
    ok = await org.webhook.get("/v1/channels/whatsapp/webhook", params={
        "hub.mode": "subscribe", "hub.verify_token": org.verify_token,
        "hub.challenge": "1158201444"})
    assert ok.status_code == 200 and ok.text == "1158201444"
    assert ok.headers["content-type"].startswith("text/plain")
    for params in ({"hub.mode": "subscribe", "hub.verify_token": "not-the-token",
                    "hub.challenge": "1"},
                   {"hub.mode": "unsubscribe", "hub.verify_token": org.verify_token,
                    "hub.challenge": "1"},
                   {"hub.mode": "subscribe", "hub.challenge": "1"}):
        refused = await org.webhook.get("/v1/channels/whatsapp/webhook", params=params)
        assert refused.status_code == 403 and "1" != refused.text

    # Change the display number and the token; the old token no longer verifies.
    new_token = "verify-" + secrets.token_hex(8)
    changed = await org.api.patch(f"/v1/channels/whatsapp/numbers/{org.number_id}",
                                  json={"display_number": "+1 555 000 2222",
                                        "verify_token": new_token})
    assert changed.status_code == 200 and changed.json()["display_number"] == "+1 555 000 2222"
    assert (await org.webhook.get("/v1/channels/whatsapp/webhook", params={
        "hub.mode": "subscribe", "hub.verify_token": org.verify_token,
        "hub.challenge": "2"})).status_code == 403
    assert (await org.webhook.get("/v1/channels/whatsapp/webhook", params={
        "hub.mode": "subscribe", "hub.verify_token": new_token,
        "hub.challenge": "2"})).text == "2"

    # Another organization neither sees nor changes it, nor claims its phone number id.
    other = await make_org()
    assert (await other.client.get(
        f"/v1/channels/whatsapp/numbers/{org.number_id}")).status_code == 404
    assert (await other.client.delete(
        f"/v1/channels/whatsapp/numbers/{org.number_id}")).status_code == 404
    clash = await other.client.post("/v1/channels/whatsapp/numbers", json={
        "phone_number_id": org.phone_number_id, "display_number": "+1", "flow_id": org.flow_id,
        "verify_token": "x" * 12, "app_secret_secret": "a", "access_token_secret": "b"})
    assert clash.status_code == 404 and "flow_id" in clash.json()["message"]

    assert (await org.api.delete(
        f"/v1/channels/whatsapp/numbers/{org.number_id}")).status_code == 204
    assert await pool.fetchval("SELECT count(*) FROM whatsapp_numbers WHERE id = $1",
                               number["id"]) == 0
    assert (await org.api.get(
        f"/v1/channels/whatsapp/numbers/{org.number_id}")).status_code == 404


async def test_bad_numbers_are_refused_naming_the_field(wa_org, make_org, pool):
    org = await wa_org()
    base = {"phone_number_id": "1234567890", "display_number": "+1", "flow_id": org.flow_id,
            "verify_token": "v" * 12, "app_secret_secret": "meta_app_secret",
            "access_token_secret": "meta_token"}
    taken = await org.api.post("/v1/channels/whatsapp/numbers",
                               json={**base, "phone_number_id": org.phone_number_id})
    assert taken.status_code == 409 and "phone_number_id" in taken.json()["message"]
    bad_secret = await org.api.post("/v1/channels/whatsapp/numbers",
                                    json={**base, "app_secret_secret": "not a name!"})
    assert bad_secret.status_code == 422 and "app_secret_secret" in bad_secret.text
    short = await org.api.post("/v1/channels/whatsapp/numbers",
                               json={**base, "verify_token": "short"})
    assert short.status_code == 422 and "verify_token" in short.text
    assert await pool.fetchval("SELECT count(*) FROM whatsapp_numbers WHERE org_id = $1",
                               org.id) == 1

    editor = await make_org(role="editor")
    refused = await editor.client.post("/v1/channels/whatsapp/numbers", json=base)
    assert refused.status_code == 403
    assert (await editor.client.get("/v1/channels/whatsapp/numbers")).status_code == 403
