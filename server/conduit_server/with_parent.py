"""Run a command that gets SIGTERM when the process that started it dies (Linux PDEATHSIG).

    python -m conduit_server.with_parent PARENT_PID COMMAND [ARG...]

The supervisor starts every child through this (decision 0049). Setting PDEATHSIG from a
`preexec_fn` would run Python between fork and exec in a parent full of gRPC threads, which the
subprocess documentation warns may deadlock, and which aborted a starting service here (SIGABRT).
Here it is set in a fresh, single-threaded interpreter that then `exec`s the command: the setting
survives exec, and the parent forks nothing but C.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import NoReturn

_PR_SET_PDEATHSIG = 1
# The exit code when the parent was already gone before the guard was set (as a shell's 128+SIGTERM).
PARENT_GONE = 128 + signal.SIGTERM


def command(parent_pid: int, argv: list[str]) -> list[str]:
    """`argv`, wrapped so it dies with `parent_pid`."""
    return [sys.executable, "-m", "conduit_server.with_parent", str(parent_pid), *argv]


def main(args: list[str]) -> NoReturn:
    if len(args) < 2 or not args[0].isdigit():
        print("usage: python -m conduit_server.with_parent PARENT_PID COMMAND [ARG...]", file=sys.stderr)
        sys.exit(2)
    parent = int(args[0])
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
            error = ctypes.get_errno()
            print(f"with_parent: prctl(PR_SET_PDEATHSIG) failed: {os.strerror(error)}", file=sys.stderr)
            sys.exit(1)
    # The parent may have died before the guard was set: then nothing would ever signal us.
    if os.getppid() != parent:
        sys.exit(PARENT_GONE)
    os.execvp(args[1], args[1:])  # noqa: S606 - the supervisor's own command line


if __name__ == "__main__":
    main(sys.argv[1:])
