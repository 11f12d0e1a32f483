"""PII tokens and the pure grant transform."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import re
import stat

import pytest
from pydantic import SecretStr

from bus.catalog.masking import GrantView, apply_grant, is_token, load_pii_key, token
from bus.config import Settings
from bus.errors import ConfigurationError
from tests.unit.catalog.support import citizen_event, citizen_id

KEY = b"k" * 32
TOKEN_RE = re.compile(r"tok_[A-Z2-7]{32}")


def view(**overrides: object) -> GrantView:
    data: dict = {
        "id": 7,
        "dataset": "dancu.resident",
        "agency": "ubnd-q1",
        "purpose": "xác minh cư trú",
        "legal_basis": "Luật Cư trú 2020",
        "fields": ("citizen_id", "full_name", "unit", "note"),
        "allow_pii": False,
        "pii_fields": frozenset({"citizen_id", "full_name", "birth_date"}),
        "key_fields": ("citizen_id",),
        "expires": dt.date(2099, 1, 1),
        "token_key": KEY,
    }
    data.update(overrides)
    return GrantView(**data)


def test_token_is_deterministic_keyed_and_shaped() -> None:
    a = token("079090001234", KEY)
    assert a == token("079090001234", KEY)
    assert TOKEN_RE.fullmatch(a) and is_token(a)
    assert a != token("079090001235", KEY)
    assert a != token("079090001234", b"another key of 32 bytes........")
    # text is compared after NFC normalisation and trimming: the same name is the same token
    assert token("Nguyễn", KEY) == token("Nguye\u0302\u0303n ", KEY)
    assert token(dt.date(1990, 5, 1), KEY) == token("1990-05-01", KEY)


def test_tokens_of_many_inputs_are_distinct() -> None:
    tokens = {token(citizen_id(i), KEY) for i in range(5000)}
    assert len(tokens) == 5000


def test_apply_grant_drops_fields_and_tokenises_pii() -> None:
    event = citizen_event(3)
    original = copy.deepcopy(event)
    out = apply_grant(event, view())
    assert event == original  # pure: the input is left unchanged
    after = out["after"]
    assert set(after) == {"citizen_id", "full_name", "unit", "note"}  # no birth_date, phone
    assert after["citizen_id"] == token(citizen_id(3), KEY)
    assert after["full_name"] == token("Nguyễn Văn Thử 3", KEY)
    assert after["unit"] == "26734" and after["note"] == "ghi chú"
    assert json.loads(out["key"]) == {"citizen_id": token(citizen_id(3), KEY)}
    assert out["source"]["position"] is None and out["source"]["agency"] == "cong-an-tp"
    assert out["before"] is None
    assert (out["event_id"], out["op"], out["ts_ms"]) == (
        event["event_id"],
        event["op"],
        event["ts_ms"],
    )
    assert citizen_id(3) not in json.dumps(out, default=str, ensure_ascii=False)


def test_apply_grant_with_pii_keeps_values_in_clear() -> None:
    out = apply_grant(citizen_event(4), view(allow_pii=True))
    assert out["after"]["citizen_id"] == citizen_id(4)
    assert json.loads(out["key"]) == {"citizen_id": citizen_id(4)}
    assert out["source"]["position"] == "cursor-4"
    assert "birth_date" not in out["after"]  # still only the granted fields


def test_key_field_outside_the_grant_is_tokenised_even_with_pii() -> None:
    out = apply_grant(citizen_event(5), view(allow_pii=True, fields=("unit",)))
    assert out["after"] == {"unit": "26734"}
    assert json.loads(out["key"]) == {"citizen_id": token(citizen_id(5), KEY)}


def test_nulls_stay_null_and_deletes_are_masked() -> None:
    event = citizen_event(6, op="d")
    event["before"], event["after"] = event["after"], None
    event["before"]["full_name"] = None
    out = apply_grant(event, view())
    assert out["after"] is None
    assert out["before"]["full_name"] is None
    assert out["before"]["citizen_id"] == token(citizen_id(6), KEY)


def test_an_unparsable_key_is_hidden_whole() -> None:
    event = citizen_event(7)
    event["key"] = citizen_id(7)
    assert apply_grant(event, view())["key"] == token(citizen_id(7), KEY)


def test_without_a_key_apply_grant_refuses() -> None:
    with pytest.raises(ConfigurationError, match="token key"):
        apply_grant(citizen_event(1), view(token_key=b""))


def test_key_file_is_made_once_private_and_reused(offline_settings: Settings) -> None:
    first = load_pii_key(offline_settings)
    path = offline_settings.home / "pii.key"
    assert path.is_file()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_pii_key(offline_settings) == first
    assert len(first) == 64


def test_configured_key_wins_and_must_be_long_enough(offline_settings: Settings) -> None:
    configured = offline_settings.model_copy(update={"pii_key": SecretStr("s" * 40)})
    assert load_pii_key(configured) == b"s" * 40
    assert not (offline_settings.home / "pii.key").exists()
    short = offline_settings.model_copy(update={"pii_key": SecretStr("short")})
    with pytest.raises(ConfigurationError, match="pii_key"):
        load_pii_key(short)
