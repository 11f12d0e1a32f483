"""The demo's console logins: one live key per role; a second run's keys replace the first's."""

from __future__ import annotations

from bus.catalog.api_keys import authenticate
from bus.config import Settings
from bus.demo.logins import DEMO_AGENCIES, console_lines, demo_logins


def test_one_live_key_per_role_and_a_rerun_replaces_them(offline_settings: Settings) -> None:
    first = demo_logins(offline_settings)
    assert [x.role for x in first] == ["operator", "publisher", "consumer", "auditor"]
    for login in first:
        info = authenticate(offline_settings, login.key)
        assert info is not None and (info.role, info.agency) == (
            login.role,
            DEMO_AGENCIES[login.role][0],
        )
    second = demo_logins(offline_settings)
    assert all(authenticate(offline_settings, x.key) is None for x in first)
    assert all(authenticate(offline_settings, x.key) is not None for x in second)
    lines = console_lines("http://127.0.0.1:8088/console/", second)
    assert lines[0].endswith("http://127.0.0.1:8088/console/")
    assert all(x.key in "\n".join(lines) for x in second)


def test_the_publisher_and_consumer_logins_are_the_demos_agencies() -> None:
    """The consumer login is the agency the demo grants (``SECOND_AGENCY``), the publisher login
    the owner its dataset file names: a change there moves the logins with it."""
    import yaml

    from bus.demo.city import DATASET, EXAMPLES, SECOND_AGENCY, SECOND_AGENCY_DISPLAY

    assert DEMO_AGENCIES["consumer"] == (SECOND_AGENCY, SECOND_AGENCY_DISPLAY)
    dataset = yaml.safe_load((EXAMPLES / "datasets" / f"{DATASET}.yaml").read_text("utf-8"))
    assert DEMO_AGENCIES["publisher"] == (dataset["publisher"], dataset["publisher_display"])
