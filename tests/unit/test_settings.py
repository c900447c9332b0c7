"""Settings: grouped knobs from the environment, and the round trip to a child process's environment."""

from __future__ import annotations

import pytest

from conduit_server.runtime.settings import Settings
from conduit_server.runtime.settings_reference import reference


def test_a_grouped_setting_is_read_with_a_double_underscore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUIT_REALTIME__HEARTBEAT_SECONDS", "5")
    monkeypatch.setenv("CONDUIT_CACHE__PROFILE_TTL_SECONDS", "12.5")
    settings = Settings()
    assert (settings.realtime.heartbeat_seconds, settings.cache.profile_ttl_seconds) == (5.0, 12.5)
    assert settings.realtime.read_count == 200  # the rest of the group keeps its defaults


def test_the_environment_of_a_child_process_recreates_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Settings.model_validate({"realtime": {"heartbeat_seconds": 3.0}, "cache": {"profile_entries": 7},
                                        "users_port": 6001})
    for name, value in original.as_environment().items():
        monkeypatch.setenv(name, value)
    assert Settings() == original


def test_an_inconsistent_realtime_group_is_refused() -> None:
    with pytest.raises(ValueError, match="max_queued_per_watcher"):
        Settings.model_validate({"realtime": {"max_queued_per_watcher": 10, "read_count": 200}})


def test_the_reference_lists_every_setting_with_its_meaning() -> None:
    rows = reference().splitlines()[2:]
    assert any(row.startswith("| `CONDUIT_REALTIME__HEARTBEAT_SECONDS` | `15.0` |") for row in rows)
    assert [row for row in rows if row.endswith("|  |")] == []  # a setting nobody explained
