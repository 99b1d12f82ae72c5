"""A flow's chat replies as WhatsApp text messages: Markdown turned into WhatsApp's own marks
(`*bold*`, `_italic_`, `~strike~`, ```` ```mono``` ````), and long replies split under the
4,096-character limit of a text body, at a paragraph, line, sentence or word where one is near."""

from __future__ import annotations

import re
from typing import Any

MAX_TEXT_CHARS = 4096

_BOLD = re.compile(r"\*\*(.+?)\*\*|__(.+?)__", re.DOTALL)
_ITALIC = re.compile(r"(?<![*\w])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![*\w])")
_STRIKE = re.compile(r"~~(.+?)~~", re.DOTALL)
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.MULTILINE)
_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")
_BULLET = re.compile(r"^(\s*)[-+]\s+", re.MULTILINE)


def whatsapp_format(markdown: str) -> str:
    """Markdown (the chat hint's) as WhatsApp formatting."""
    text = _LINK.sub(lambda m: f"{m[1]} ({m[2]})", markdown)
    # Single-star italics first, so that bold's output stars are not read as italics.
    text = _ITALIC.sub(lambda m: f"_{m[1]}_", text)
    text = _BOLD.sub(lambda m: f"*{m[1] or m[2]}*", text)
    text = _STRIKE.sub(lambda m: f"~{m[1]}~", text)
    text = _HEADING.sub(lambda m: f"*{m[1]}*", text)
    return _BULLET.sub(lambda m: f"{m[1]}• ", text)


def split_text(text: str, limit: int = MAX_TEXT_CHARS) -> list[str]:
    """`text` in parts of at most `limit` characters, cut at the last natural break."""
    parts: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = -1
        for sep in ("\n\n", "\n", ". ", " "):
            at = window.rfind(sep)
            if at > limit // 2:
                cut = at + len(sep)
                break
        if cut <= 0:
            cut = limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return parts


def text_messages(replies: list[str]) -> list[dict[str, Any]]:
    """Graph API message bodies for a turn's replies, in order."""
    return [{"type": "text", "text": {"preview_url": False, "body": part}}
            for reply in replies for part in split_text(whatsapp_format(reply))]
