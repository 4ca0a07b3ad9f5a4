"""One daemon per state directory: an exclusive ``flock`` on ``<state_dir>/gaitwatch.lock``.

Why: two daemons on one state directory both reach READY, drain the same outbox (every alert twice, acks
recorded by the wrong process) and, with the same MQTT client id, keep kicking each other off the broker. A
lock file that holds the owner's pid lets the second one exit at once and say who is in the way.

``flock`` (not a pid file alone) because the kernel releases it when the owner dies, even by SIGKILL, so a
crashed daemon never blocks its successor; the pid inside is only for the message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = "gaitwatch.lock"


class StateDirLockedError(Exception):
    """Another process holds the state directory; ``holder`` is its pid when it could be read."""

    def __init__(self, path: Path, holder: int | None) -> None:
        who = f"process {holder}" if holder is not None else "another process"
        super().__init__(
            f"state directory {path.parent} is in use by {who} (lock {path}); stop that gaitwatch first, or give "
            "this one its own service.state_dir"
        )
        self.path = path
        self.holder = holder


class StateDirLock:
    """Held from ``acquire`` until ``release`` (or the process's death)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``StateDirLockedError`` (``OSError`` when the file cannot be opened)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise StateDirLockedError(self.path, holder) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        # The file stays (removing it would race with a successor that already opened it); the lock goes.
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
