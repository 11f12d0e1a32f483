"""Small shared helpers of the catalogue: clocks, name rules and write-once key files."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

from bus.timeutil import VN

AGENCY_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
MAX_AGENCY_NAME = 100


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
