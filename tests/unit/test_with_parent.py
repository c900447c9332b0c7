"""Children of the supervisor die with it, and are started without Python between fork and exec."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conduit_server import with_parent

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PDEATHSIG is Linux's")


def _gone(pid: int, seconds: float) -> bool:
    """Whether `pid` stops running (or becomes a zombie) within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in {"Z", "X"}:
            return True
        time.sleep(0.02)
    return False


def test_the_command_itself_runs_in_the_wrapper_s_place() -> None:
    done = subprocess.run(with_parent.command(os.getpid(), [sys.executable, "-c", "import os; print(os.getpid())"]),
                          capture_output=True, text=True, check=True, timeout=30)
    assert done.stdout.strip().isdigit()


def test_a_child_gets_sigterm_when_the_process_that_started_it_dies(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    parent_script = textwrap.dedent(f"""
        import os, subprocess, sys
        from conduit_server import with_parent
        child = subprocess.Popen(with_parent.command(os.getpid(), ["sleep", "120"]), start_new_session=True)
        with open({str(pid_file)!r}, "w") as out:
            out.write(str(child.pid))
        sys.stdin.read()  # until the test closes our stdin, or kills us
    """)
    parent = subprocess.Popen([sys.executable, "-c", parent_script], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the parent never started its child"
            time.sleep(0.02)
        child = int(pid_file.read_text())
        # The wrapper execs the command in its own place: the child process becomes `sleep`.
        deadline = time.monotonic() + 30
        while Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0] != b"sleep":
            assert time.monotonic() < deadline, "the wrapper never exec'd its command"
            time.sleep(0.02)
        assert not _gone(child, 0.2)
        parent.kill()  # no chance to clean up: only the kernel's PDEATHSIG can end the child
        parent.wait(timeout=30)
        assert _gone(child, 10), "the child outlived its parent"
    finally:
        parent.kill()
        parent.wait(timeout=30)


def test_a_parent_already_gone_means_the_command_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    not_our_parent = 1  # init: never this test's pid
    done = subprocess.run(with_parent.command(not_our_parent, ["touch", str(marker)]), timeout=30, check=False)
    assert done.returncode == with_parent.PARENT_GONE
    assert not marker.exists()


def test_a_bad_command_line_is_a_usage_error() -> None:
    done = subprocess.run([sys.executable, "-m", "conduit_server.with_parent", "not-a-pid", "true"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert "usage:" in done.stderr
