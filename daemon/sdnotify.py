"""systemd's notify protocol, written directly: one AF_UNIX datagram of ``KEY=value`` lines to $NOTIFY_SOCKET.

With ``Type=notify`` systemd waits for ``READY=1`` before it calls the service started, and with
``WatchdogSec=`` it restarts the service when ``WATCHDOG=1`` stops arriving. Writing the datagram ourselves
keeps failures visible: the ``sdnotify`` package swallows every error, so a unit whose notifications never
arrive would be killed by its watchdog with nothing in the log. Here the first failure is logged as a warning
(later identical ones only at debug level, so a broken socket cannot flood the journal) and counted in
``failures``.

Without $NOTIFY_SOCKET (run by hand, in tests, in a container) every call is a no-op returning False. A
socket address starting with ``@`` is in the Linux abstract namespace (systemd passes such addresses to
services in containers).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping
from types import TracebackType

_LOG = logging.getLogger(__name__)


def _socket_address(raw: str) -> str | None:
    """The address to ``sendto``: an absolute path, or ``\\0name`` for ``@name``; None if unusable."""
    if raw.startswith("@"):
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    return None


class SystemdNotifier:
    """Sends sd_notify messages. Safe to call from the event loop: the socket is non-blocking, so a systemd
    that does not read its queue costs a logged failure, never a stalled loop."""

    def __init__(self, env: Mapping[str, str] | None = None, logger: logging.Logger | None = None) -> None:
        env = os.environ if env is None else env
        self._log = logger or _LOG
        self._raw = env.get("NOTIFY_SOCKET", "")
        self._address = _socket_address(self._raw) if self._raw else None
        self._sock: socket.socket | None = None
        self._last_error: str | None = None
        self.failures = 0
        if self._raw and self._address is None:
            self._fail(f"unsupported NOTIFY_SOCKET address {self._raw!r} (need an absolute path or @name)")

    @property
    def enabled(self) -> bool:
        """True when $NOTIFY_SOCKET names a usable socket (i.e. systemd is listening)."""
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` assignments in one datagram; True if it was sent."""
        if self._address is None:
            if self._raw:
                self.failures += 1
            return False
        data = "\n".join(assignments).encode("utf-8")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(data, self._address)
        except OSError as exc:
            self._fail(f"sd_notify to {self._raw} failed: {exc.strerror or exc}")
            return False
        if self._last_error is not None:
            self._log.info("sd_notify to %s works again", self._raw)
            self._last_error = None
        return True

    def _fail(self, message: str) -> None:
        self.failures += 1
        if message != self._last_error:
            self._log.warning("%s", message)
            self._last_error = message
        else:
            self._log.debug("%s (repeated)", message)

    def ready(self, status: str | None = None) -> bool:
        """Start-up finished: config, outbox, models and cameras are up."""
        return self.notify("READY=1", *(() if status is None else (_status_line(status),)))

    def watchdog(self) -> bool:
        """I am alive; send at ``watchdog_interval_s()`` and only while the loop and workers are healthy."""
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """One line shown by ``systemctl status``."""
        return self.notify(_status_line(text))

    def reloading(self) -> bool:
        """A SIGHUP reload has begun; ``ready`` ends it. ``MONOTONIC_USEC`` lets systemd's
        ``Type=notify-reload`` (and ``systemctl reload`` with ``ExecReload=``) match the two."""
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self) -> bool:
        """Shutdown has begun (so systemd does not mistake a slow stop for a hang)."""
        return self.notify("STOPPING=1")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more start-up/shutdown time (e.g. while loading models on a slow disk)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={round(seconds * 1e6)}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> SystemdNotifier:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _status_line(text: str) -> str:
    # The protocol is line-based: a newline inside the text would start a bogus assignment.
    return "STATUS=" + " ".join(text.splitlines())


def watchdog_interval_s(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """How often to send ``WATCHDOG=1``: half of $WATCHDOG_USEC (systemd's advice, so one late ping is not
    fatal), or None when the watchdog is off or meant for another process ($WATCHDOG_PID)."""
    env = os.environ if env is None else env
    raw = env.get("WATCHDOG_USEC", "")
    try:
        usec = int(raw)
    except ValueError:
        return None
    if usec <= 0:
        return None
    watchdog_pid = env.get("WATCHDOG_PID")
    if watchdog_pid is not None and watchdog_pid.strip() != str(os.getpid() if pid is None else pid):
        return None
    return usec / 2e6
