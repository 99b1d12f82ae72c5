"""Files only the server's user may read: generated keys and the dev token in `$AICO_HOME`.

A file is created with mode 0600 from the start (never briefly readable by others), and a key
file is created once: when two processes start together, the second reads the first's key.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from aico.errors import AicoError


def write_private_file(path: Path, text: str, *, replace: bool = True) -> bool:
    """Write `text` to `path` with mode 0600. With `replace=False` an existing file is kept
    (returns False: someone else wrote it first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(text)
    path.chmod(0o600)  # an existing file keeps its mode through O_TRUNC
    return True


def ensure_key_file(path: Path, *, nbytes: int, error: type[AicoError]) -> str:
    """The key in `path` (url-safe base64), generated on first use; `error` if the file is
    readable by group or others."""
    if not path.exists():
        material = base64.urlsafe_b64encode(secrets.token_bytes(nbytes)).decode()
        write_private_file(path, material + "\n", replace=False)
    if path.stat().st_mode & 0o077:
        raise error(f"{path} must not be readable by group or others (chmod 600)")
    return path.read_text().strip()


def decode_key(text: str) -> bytes:
    """Key material written as url-safe base64 (padding optional); b"" when it is not base64,
    so the caller's length check names the setting."""
    text = text.strip()
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return b""
