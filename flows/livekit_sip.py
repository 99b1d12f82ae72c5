"""LiveKit SIP provisioning: what the operator's LiveKit server needs to route an AICO number.

For a number on LiveKit (`provider: "livekit"`), `provision_number` creates through
`livekit-api`:

* an **inbound trunk** that accepts calls to the number (from the carrier's SIP: Telnyx or
  Twilio Elastic SIP pointed at LiveKit's SIP address);
* a **dispatch rule** on that trunk: a new room per call (`dispatch_rule_individual`, the
  room prefix of `settings.livekit`), the number in the room's metadata;
* an **outbound trunk** when the number's settings name its carrier's SIP address
  (`sip_address`, and optionally `sip_username` + `sip_password_secret`), which outbound calls
  and warm transfers dial through.

It returns the ids to keep in the number's settings (`inbound_trunk_id`, `dispatch_rule_id`,
`outbound_trunk_id`), so a later change or removal replaces or deletes exactly those
(`deprovision_number`). LiveKit then sends `participant_joined` to AICO's webhook when a caller
is in a room (`serve_apps/routes/livekit_webhook.py`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from aico.settings import LiveKitSettings
from flows.livekit_calls import livekit_api
from flows.telephony import PhoneNumber

log = logging.getLogger("aico.flows.livekit_sip")

# The number-settings keys that provisioning owns (a PATCH that changes others re-provisions).
PROVISIONED_KEYS = ("inbound_trunk_id", "dispatch_rule_id", "outbound_trunk_id")


async def provision_number(settings: LiveKitSettings, number: PhoneNumber, *,
                           secrets: Mapping[str, str]) -> dict[str, str]:
    """Create the number's inbound trunk, dispatch rule and (with `sip_address`) outbound
    trunk; returns their ids for the number's settings. `secrets` are the number's secret
    values by setting key (`sip_password_secret`)."""
    from livekit import api

    label = f"aico {number.number}"
    metadata = json.dumps({"aico_number_id": str(number.id), "number": number.number})
    ids: dict[str, str] = {}
    async with livekit_api(settings) as lk:
        inbound = await lk.sip.create_inbound_trunk(api.CreateSIPInboundTrunkRequest(
            trunk=api.SIPInboundTrunkInfo(name=label, numbers=[number.number],
                                          metadata=metadata)))
        ids["inbound_trunk_id"] = inbound.sip_trunk_id
        rule = await lk.sip.create_dispatch_rule(api.CreateSIPDispatchRuleRequest(
            dispatch_rule=api.SIPDispatchRuleInfo(
                name=label, metadata=metadata, trunk_ids=[inbound.sip_trunk_id],
                rule=api.SIPDispatchRule(dispatch_rule_individual=api.SIPDispatchRuleIndividual(
                    room_prefix=settings.room_prefix)),
                room_config=api.RoomConfiguration(metadata=metadata))))
        ids["dispatch_rule_id"] = rule.sip_dispatch_rule_id
        address = str(number.settings.get("sip_address") or "")
        if address:
            outbound = await lk.sip.create_outbound_trunk(api.CreateSIPOutboundTrunkRequest(
                trunk=api.SIPOutboundTrunkInfo(
                    name=label, metadata=metadata, address=address, numbers=[number.number],
                    auth_username=str(number.settings.get("sip_username") or ""),
                    auth_password=secrets.get("sip_password_secret", ""))))
            ids["outbound_trunk_id"] = outbound.sip_trunk_id
    return ids


async def deprovision_number(settings: LiveKitSettings, number_settings: Mapping[str, Any]
                             ) -> list[str]:
    """Delete what `provision_number` created for a number (by the ids in its settings); ids
    LiveKit no longer knows are skipped. Returns the ids deleted."""
    from livekit import api

    deleted = []
    async with livekit_api(settings) as lk:
        rule = str(number_settings.get("dispatch_rule_id") or "")
        if rule:
            try:
                await lk.sip.delete_dispatch_rule(
                    api.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=rule))
                deleted.append(rule)
            except api.TwirpError as err:
                if err.code != "not_found":
                    raise
        for key in ("inbound_trunk_id", "outbound_trunk_id"):
            trunk = str(number_settings.get(key) or "")
            if not trunk:
                continue
            try:
                await lk.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=trunk))
                deleted.append(trunk)
            except api.TwirpError as err:
                if err.code != "not_found":
                    raise
    return deleted
