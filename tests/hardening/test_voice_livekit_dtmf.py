"""SIP DTMF through the LiveKit transport passes the same per-connection bucket as the
WebSocket's control frames: a flood of digits from a phone becomes a bounded number of turns.
(No LiveKit server runs here: the room's `sip_dtmf_received` event is emitted as the SDK does.)"""

from __future__ import annotations

from dataclasses import dataclass

from actors.transports.frame_limits import ControlBucket
from actors.transports.livekit import LiveKitTransport
from aico.settings import LimitSettings
from aico.voice_messages import Dtmf


@dataclass
class SipDTMF:  # the fields of livekit.rtc's SipDTMF the transport reads
    code: int
    digit: str


class Room:
    def __init__(self) -> None:
        self.handlers: dict[str, object] = {}

    def on(self, event: str, handler: object) -> None:
        self.handlers[event] = handler


async def test_a_dtmf_flood_from_a_phone_is_bounded_by_the_bucket():
    room = Room()
    transport = LiveKitTransport(room, source=None,
                                 limits=LimitSettings(voice_control_per_s=10,
                                                      voice_control_burst=20))
    transport._wire(room)
    # The flood arrives within one instant: a frozen clock makes that exact on a busy box.
    transport.control = ControlBucket(rate_per_s=10, burst=20, clock=lambda: 0.0)
    for _ in range(2000):
        room.handlers["sip_dtmf_received"](SipDTMF(code=5, digit="5"))  # type: ignore[operator]
    delivered = []
    while not transport._inbox.empty():
        delivered.append(await transport.receive())
    assert len(delivered) == 20  # the burst; nothing refilled within the instant
    assert delivered[0] == Dtmf(digit="5")
    assert transport.control.refused == 2000 - len(delivered)
