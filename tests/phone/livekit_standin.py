"""A loopback stand-in for a LiveKit server's API, for the real `livekit-api` client.

LiveKit's server API is Twirp over HTTP: `POST /twirp/livekit.<Service>/<Method>` with a
protobuf body and `Authorization: Bearer <JWT signed with the API secret>`; errors are Twirp's
JSON `{"code", "msg", "meta"}`. The stand-in decodes every request with the protocol's own
message classes (found from the service descriptors, so every method of SIP, RoomService and
AgentDispatchService is understood), checks the token, records the call, and answers the
method's response type: trunks and dispatch rules are kept so List/Delete see them.

A participant joining a room (`GET /rtc/v1?...` with the join token in `Authorization`, what
`livekit.rtc.Room.connect` sends) is recorded with the token's verified claims and refused with
401: no LiveKit server (so no media) can run here, and the SDK gives up at once on a 401.

`signed_webhook(event, api_key=..., api_secret=...)` builds a webhook the way LiveKit sends
one: the protobuf JSON body and a JWT in `Authorization` whose `sha256` claim is the body's hash.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.message import DecodeError, Message
from livekit import api
from livekit.api.access_token import Claims
from livekit.protocol import agent_dispatch, room, sip, webhook

_MODULES = (sip, room, agent_dispatch)


def _methods() -> dict[tuple[str, str], tuple[type[Message], type[Message]]]:
    out = {}
    for module in _MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                out[(service.name, method.name)] = (
                    message_factory.GetMessageClass(method.input_type),
                    message_factory.GetMessageClass(method.output_type))
    return out


@dataclass
class Recorded:
    """One API request: its service, method, decoded body (as protobuf JSON) and the grants of
    the token it carried."""

    service: str
    method: str
    body: dict[str, Any]
    claims: Claims
    at: float = field(default_factory=time.time)


@dataclass
class Join:
    """A participant's attempt to join a room, with its token's verified claims."""

    identity: str
    room: str
    kind: str
    claims: Claims


class LiveKitStandIn:
    def __init__(self, *, api_key: str = "APIstandin", api_secret: str | None = None) -> None:
        self.api_key = api_key
        self.api_secret = api_secret or secrets.token_urlsafe(32)
        self.requests: list[Recorded] = []
        self.joins: list[Join] = []
        self.refused: list[tuple[str, str]] = []  # (path, why): bad token, unknown method
        self.inbound_trunks: dict[str, Any] = {}
        self.outbound_trunks: dict[str, Any] = {}
        self.dispatch_rules: dict[str, Any] = {}
        self._sip_failures: deque[tuple[int, str]] = deque()
        self._ids = itertools.count(1)
        self._methods = _methods()
        self._lock = threading.RLock()  # `calls()` may run inside `wait_for`
        self._changed = threading.Condition(self._lock)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, content_type: str, raw: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                status, content_type, answer = outer._twirp(
                    self.path, self.headers.get("authorization") or "", raw)
                self._reply(status, content_type, answer)

            def do_GET(self) -> None:
                status, answer = outer._join(self.path, self.headers.get("authorization") or "")
                self._reply(status, "text/plain", answer.encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.ws_url = "ws" + self.url[4:]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    # --- what a test arranges and reads ----------------------------------------------------

    def fail_next_sip_call(self, sip_status_code: int, sip_status: str) -> None:
        """The next CreateSIPParticipant/TransferSIPParticipant fails as the callee's carrier
        answered (486 Busy Here, 480 Temporarily Unavailable, 408 Request Timeout...)."""
        with self._lock:
            self._sip_failures.append((sip_status_code, sip_status))

    def calls(self, method: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method == method]

    def wait_for(self, predicate: Callable[[], Any], *, timeout_s: float = 30.0) -> Any:
        """Block until `predicate()` is truthy (re-checked on every request); its value."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not (value := predicate()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the LiveKit stand-in never saw what the test waited for")
                self._changed.wait(left)
            return value

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- the wire -----------------------------------------------------------------------------

    def _claims(self, authorization: str) -> Claims | None:
        token = authorization.removeprefix("Bearer ").strip()
        try:
            return api.TokenVerifier(self.api_key, self.api_secret).verify(token)
        except Exception:  # noqa: BLE001 - any bad token is an unauthenticated request
            return None

    def _twirp(self, path: str, authorization: str, raw: bytes) -> tuple[int, str, bytes]:
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "twirp" or not parts[1].startswith("livekit."):
            return self._error(path, 404, "bad_route", f"no route {path}")
        service, method = parts[1].removeprefix("livekit."), parts[2]
        classes = self._methods.get((service, method))
        if classes is None:
            return self._error(path, 404, "bad_route", f"no method {service}/{method}")
        claims = self._claims(authorization)
        if claims is None:
            return self._error(path, 401, "unauthenticated", "invalid token")
        request_class, response_class = classes
        try:
            request = request_class.FromString(raw)
        except DecodeError:
            return self._error(path, 400, "malformed", "the body is not a protobuf message")
        with self._changed:
            self.requests.append(Recorded(service, method, json_format.MessageToDict(request),
                                          claims))
            try:
                response = self._answer(method, request, response_class())
            finally:
                self._changed.notify_all()
        if isinstance(response, tuple):
            return response
        return 200, "application/protobuf", response.SerializeToString()

    def _error(self, path: str, status: int, code: str, msg: str,
               meta: dict[str, str] | None = None) -> tuple[int, str, bytes]:
        with self._changed:
            self.refused.append((path, code))
            self._changed.notify_all()
        body: dict[str, Any] = {"code": code, "msg": msg}
        if meta:
            body["meta"] = meta
        return status, "application/json", json.dumps(body).encode()

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}{secrets.token_hex(3)}"

    def _answer(self, method: str, request: Any, response: Any) -> Any:
        # Called with the lock held.
        if method == "CreateSIPInboundTrunk":
            response.CopyFrom(request.trunk)
            response.sip_trunk_id = self._id("ST")
            self.inbound_trunks[response.sip_trunk_id] = response
        elif method == "CreateSIPOutboundTrunk":
            response.CopyFrom(request.trunk)
            response.sip_trunk_id = self._id("ST")
            self.outbound_trunks[response.sip_trunk_id] = response
        elif method == "DeleteSIPTrunk":
            trunk = (self.inbound_trunks.pop(request.sip_trunk_id, None)
                     or self.outbound_trunks.pop(request.sip_trunk_id, None))
            if trunk is None:
                return self._unlocked_error("not_found", f"trunk {request.sip_trunk_id}")
            response.sip_trunk_id = request.sip_trunk_id
        elif method == "ListSIPInboundTrunk":
            response.items.extend(self.inbound_trunks.values())
        elif method == "ListSIPOutboundTrunk":
            response.items.extend(self.outbound_trunks.values())
        elif method == "CreateSIPDispatchRule":
            rule = request.dispatch_rule if request.HasField("dispatch_rule") else None
            if rule is not None:
                response.CopyFrom(rule)
            else:
                response.rule.CopyFrom(request.rule)
                response.trunk_ids.extend(request.trunk_ids)
                response.name, response.metadata = request.name, request.metadata
                response.room_config.CopyFrom(request.room_config)
            response.sip_dispatch_rule_id = self._id("SDR")
            self.dispatch_rules[response.sip_dispatch_rule_id] = response
        elif method == "DeleteSIPDispatchRule":
            rule = self.dispatch_rules.pop(request.sip_dispatch_rule_id, None)
            if rule is None:
                return self._unlocked_error("not_found", f"rule {request.sip_dispatch_rule_id}")
            response.CopyFrom(rule)
        elif method == "ListSIPDispatchRule":
            response.items.extend(self.dispatch_rules.values())
        elif method in ("CreateSIPParticipant", "TransferSIPParticipant"):
            if self._sip_failures:
                code, status = self._sip_failures.popleft()
                # What LiveKit answers when the far end refuses: the SIP status in `meta`.
                return self._unlocked_error(
                    "unavailable" if code >= 500 else "resource_exhausted",
                    f"twirp error: sip status: {code}: {status}", status=400,
                    meta={"sip_status_code": str(code), "sip_status": status})
            if method == "CreateSIPParticipant":
                if request.sip_trunk_id and request.sip_trunk_id not in self.outbound_trunks:
                    return self._unlocked_error("not_found", f"trunk {request.sip_trunk_id}")
                response.participant_id = self._id("PA")
                response.participant_identity = (request.participant_identity
                                                 or f"sip_{request.sip_call_to}")
                response.room_name = request.room_name
                response.sip_call_id = self._id("SCL")
        elif method == "CreateDispatch":
            response.id = self._id("AD")
            response.agent_name, response.room = request.agent_name, request.room
            response.metadata = request.metadata
        elif method == "CreateRoom":
            response.sid, response.name = self._id("RM"), request.name
            response.metadata = request.metadata
        return response

    def _unlocked_error(self, code: str, msg: str, *, status: int = 404,
                        meta: dict[str, str] | None = None) -> tuple[int, str, bytes]:
        # `_answer` runs under the lock: record the refusal without taking it again.
        self.refused.append((code, msg))
        body: dict[str, Any] = {"code": code, "msg": msg}
        if meta:
            body["meta"] = meta
        return status, "application/json", json.dumps(body).encode()

    def _join(self, path: str, authorization: str) -> tuple[int, str]:
        if not path.startswith("/rtc"):
            return 404, "not found"
        claims = self._claims(authorization)
        with self._changed:
            if claims is None:
                self.refused.append((path, "unauthenticated"))
            elif "/validate" not in path:
                self.joins.append(Join(identity=claims.identity,
                                       room=claims.video.room if claims.video else "",
                                       kind=str(claims.kind or ""), claims=claims))
            self._changed.notify_all()
        return 401, "the LiveKit stand-in carries no media"


def signed_webhook(event: dict[str, Any], *, api_key: str,
                   api_secret: str) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of a webhook as LiveKit sends it: the event as protobuf JSON, and a JWT
    whose `sha256` claim is the body's SHA-256 in `Authorization`."""
    message = json_format.ParseDict(event, webhook.WebhookEvent())
    body = json_format.MessageToJson(message)
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    token = api.AccessToken(api_key, api_secret).with_sha256(digest).to_jwt()
    return body.encode(), {"Authorization": token, "Content-Type": "application/webhook+json"}


def sip_participant_joined(*, room_name: str, called: str, caller: str,
                           call_id: str | None = None) -> dict[str, Any]:
    """The `participant_joined` event LiveKit sends when a SIP caller enters the call's room,
    with the SIP attributes LiveKit sets on the participant."""
    call_id = call_id or "SCL_" + secrets.token_hex(6)
    return {
        "event": "participant_joined",
        "id": "EV_" + secrets.token_hex(8),
        "createdAt": str(int(time.time())),
        "room": {"sid": "RM_" + secrets.token_hex(6), "name": room_name},
        "participant": {
            "sid": "PA_" + secrets.token_hex(6), "identity": f"sip_{caller}",
            "kind": "SIP", "state": "ACTIVE",
            "attributes": {"sip.callID": call_id, "sip.phoneNumber": caller,
                           "sip.trunkPhoneNumber": called, "sip.callStatus": "active"},
        },
    }
