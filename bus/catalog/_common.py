"""Small shared helpers of the catalogue: clocks, name rules and write-once key files."""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
import unicodedata
from pathlib import Path

from bus.errors import ConfigurationError
from bus.timeutil import VN

AGENCY_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
MAX_AGENCY_NAME = 100


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def today_vn() -> dt.date:
    """Today's date in Viet Nam (grant expiry dates are Vietnamese calendar days)."""
    return dt.datetime.now(VN).date()


def agency_name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid agency name, or None."""
    if not isinstance(name, str) or not name:
        return "expected a non-empty agency name"
    if len(name) > MAX_AGENCY_NAME:
        return f"longer than {MAX_AGENCY_NAME} characters"
    if not AGENCY_NAME.fullmatch(name):
        return "expected lowercase letters, digits and single dashes, starting with a letter"
    return None


def fold(text: str) -> str:
    """Lowercase text without Vietnamese accents (đ → d), for search and name matching."""
    text = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()


def write_once(path: Path, data: bytes, mode: int = 0o600) -> bool:
    """Create ``path`` holding ``data`` unless it exists; True if this call created it.

    The data goes to a temporary file in the same folder first, which is then hard-linked to
    ``path``: a reader never sees a partly written file, and of writers racing for the same
    path exactly one wins (the others get False and read the winner's file).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            raise ConfigurationError(f"cannot create {path.name} ({exc.strerror})") from exc
        return True
    finally:
        os.unlink(tmp)
