"""Which base a voice URL gets (serve_apps/media_port.media_ws_base): the media port when the
replica has one and nothing says the API sits behind another address."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aico.settings import Settings, VoiceSettings
from serve_apps.media_port import media_ws_base


def settings(**fields) -> Settings:
    voice = fields.pop("voice", {})
    return Settings(voice=VoiceSettings(**voice), **fields)


def test_the_replicas_own_port_on_the_apis_host():
    assert media_ws_base(settings(host="127.0.0.1"), 31005, "127.0.0.1") == \
        "ws://127.0.0.1:31005"


def test_a_wildcard_host_names_the_host_the_client_used():
    assert media_ws_base(settings(host="0.0.0.0"), 31005, "10.1.2.3") == "ws://10.1.2.3:31005"
    assert media_ws_base(settings(host="::"), 31005, "fd00::5") == "ws://[fd00::5]:31005"


def test_behind_a_public_url_calls_go_through_it_unless_the_media_url_is_set():
    public = settings(public_url="https://voice.example.com")
    assert media_ws_base(public, 31005, "10.1.2.3") is None
    both = settings(public_url="https://voice.example.com",
                    voice={"media_url": "wss://media.example.com/"})
    assert media_ws_base(both, 31005, "10.1.2.3") == "wss://media.example.com"


def test_without_a_media_port_calls_go_through_the_api():
    assert media_ws_base(settings(host="127.0.0.1"), None, "127.0.0.1") is None


def test_a_media_url_must_be_a_websocket_base():
    for bad in ("https://media.example.com", "wss://media.example.com/path", "media:8001"):
        with pytest.raises(ValidationError) as err:
            VoiceSettings(media_url=bad)
        assert "media_url" in str(err.value)
