"""The demo's console logins: one API key per role, each for a demo agency.

Keys are shown once, so every demo run makes new ones and revokes the earlier keys of the same
agency and role (demo agencies only): the logins printed last are the ones that work.
"""

from __future__ import annotations

from dataclasses import dataclass

from bus.catalog import add_agency
from bus.catalog.api_keys import create_key, list_keys, revoke_key
from bus.config import Settings
from bus.demo.city import SECOND_AGENCY, SECOND_AGENCY_DISPLAY

# role -> (agency, its display name); the publisher and consumer are the demo's dataset owner
# and the agency its grant serves (named once, in bus.demo.city)
DEMO_AGENCIES: dict[str, tuple[str, str]] = {
    "operator": ("so-tttt", "Sở Thông tin và Truyền thông Thành phố Hồ Chí Minh"),
    "publisher": ("vp-ubnd-tp", "Văn phòng Ủy ban nhân dân Thành phố Hồ Chí Minh"),
    "consumer": (SECOND_AGENCY, SECOND_AGENCY_DISPLAY),
    "auditor": ("thanh-tra-tp", "Thanh tra Thành phố Hồ Chí Minh"),
}


@dataclass(frozen=True)
class Login:
    role: str
    agency: str
    key: str


def demo_logins(settings: Settings) -> list[Login]:
    """A fresh key per role (the earlier demo keys of that agency and role revoked)."""
    logins = []
    for role, (agency, display) in DEMO_AGENCIES.items():
        add_agency(settings, agency, display)
        for old in list_keys(settings, agency):
            if old.role == role and old.live:
                revoke_key(settings, agency, old.id)
        logins.append(Login(role, agency, create_key(settings, agency, role)[1]))
    return logins


def console_lines(url: str, logins: list[Login]) -> list[str]:
    lines = [f"  web console    {url}"]
    lines += [f"    {x.role:<10} {x.agency:<14} {x.key}" for x in logins]
    return lines
