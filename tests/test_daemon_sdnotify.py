"""sd_notify against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gaitwatch.daemon.sdnotify import SystemdNotifier, watchdog_interval_s


@pytest.fixture
def systemd_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound to a path, like systemd's notify socket; yields (socket, $NOTIFY_SOCKET)."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5.0)
    yield sock, str(path)
    sock.close()


def received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_messages_reach_the_socket(systemd_socket: tuple[socket.socket, str]) -> None:
    sock, address = systemd_socket
    with SystemdNotifier({"NOTIFY_SOCKET": address}) as notifier:
        assert notifier.enabled
        assert notifier.ready()
        assert received(sock) == "READY=1"
        assert notifier.ready(status="cameras up")
        assert received(sock) == "READY=1\nSTATUS=cameras up"
        assert notifier.watchdog()
        assert received(sock) == "WATCHDOG=1"
        assert notifier.status("2 cameras, broker down\nsecond line")
        assert received(sock) == "STATUS=2 cameras, broker down second line"  # one line, no bogus field
        assert notifier.extend_timeout(12.5)
        assert received(sock) == "EXTEND_TIMEOUT_USEC=12500000"
        assert notifier.stopping()
        assert received(sock) == "STOPPING=1"
        assert notifier.failures == 0


def test_abstract_namespace_address() -> None:
    name = f"gaitwatch-test-{secrets.token_hex(6)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5.0)
    try:
        with SystemdNotifier({"NOTIFY_SOCKET": "@" + name}) as notifier:
            assert notifier.ready()
        assert received(sock) == "READY=1"
    finally:
        sock.close()


def test_no_notify_socket_is_a_silent_no_op(caplog: pytest.LogCaptureFixture) -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    assert not notifier.ready() and not notifier.watchdog() and not notifier.stopping()
    assert notifier.failures == 0
    assert caplog.records == []


def test_send_failure_is_logged_once_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "gone"
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(missing)})
    with caplog.at_level(logging.DEBUG, logger="gaitwatch.daemon.sdnotify"):
        for _ in range(5):
            assert not notifier.watchdog()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(missing) in warnings[0].getMessage()
    assert notifier.failures == 5

    # When the socket appears, sending works again and the recovery is logged.
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(missing))
    sock.settimeout(5.0)
    try:
        with caplog.at_level(logging.INFO, logger="gaitwatch.daemon.sdnotify"):
            assert notifier.watchdog()
        assert received(sock) == "WATCHDOG=1"
        assert any("works again" in r.getMessage() for r in caplog.records)
    finally:
        sock.close()
        notifier.close()


def test_unusable_address_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        notifier = SystemdNotifier({"NOTIFY_SOCKET": "relative/path"})
    assert not notifier.enabled
    assert not notifier.ready()
    assert notifier.failures == 2
    assert any("relative/path" in r.getMessage() for r in caplog.records)


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval_s({"WATCHDOG_USEC": "20000000"}) == 10.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}) == 10.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}, pid=4242) is None
    assert watchdog_interval_s({}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "soon"}) is None
