"""Shared fixtures: a real mosquitto broker on a free loopback port.

Tests of the daemon's MQTT side run against the real broker integrators use, never a mock. ``mosquitto`` is a
fresh broker per test (anonymous, no persistence); ``mosquitto_factory`` makes brokers with persistence or
extra configuration (password file, ACL, TLS listener) and returns a handle that can stop, kill -9 and restart
the broker on the same port, as the fault-injection tests need. A missing binary FAILS the test: CI must
install mosquitto (see the README's test install command), a skipped broker test proves nothing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from gaitwatch.tools.local_broker import find_mosquitto as find_mosquitto_binary
from gaitwatch.tools.local_broker import free_port

# How long a starting broker may take to accept connections before the test fails (it takes ~10 ms).
_START_DEADLINE_S = 10.0
_STOP_DEADLINE_S = 10.0


def find_mosquitto() -> Path:
    """The mosquitto binary (``local_broker.find_mosquitto``); FAILS the test when it is absent."""
    found = find_mosquitto_binary()
    if found is None:
        pytest.fail(
            "the mosquitto broker binary is not installed (looked on $PATH and in /usr/sbin); the MQTT tests "
            "need it: run the README's test install command (e.g. `sudo apt-get install -y mosquitto`)",
            pytrace=False,
        )
    return found


@dataclass
class Mosquitto:
    """A mosquitto process on ``host:port`` with its config and log in ``workdir``."""

    binary: Path
    workdir: Path
    port: int
    host: str = "127.0.0.1"
    persistence: bool = False
    extra_config: str = ""
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def write_config(self) -> None:
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            # As root, mosquitto would drop to user 'mosquitto', who cannot read pytest's private tmp dirs.
            lines.append("user root")
        if self.persistence:
            # Save after every change: a kill -9 then loses nothing the broker acknowledged (the default
            # saves every 30 min, so a crash would lose queued messages of persistent sessions).
            lines += [
                "persistence true",
                f"persistence_location {self.workdir}/",
                "autosave_on_changes true",
                "autosave_interval 1",
            ]
        else:
            lines.append("persistence false")
        if self.extra_config:
            lines.append(self.extra_config)
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        """Start the broker and wait until it accepts TCP connections."""
        if self.running:
            raise RuntimeError(f"mosquitto on port {self.port} is already running")
        self.write_config()
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(self.binary), "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + _START_DEADLINE_S
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"mosquitto exited with {self.proc.returncode} on start:\n{self.log_text()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    pytest.fail(f"mosquitto did not listen on {self.host}:{self.port}:\n{self.log_text()}")
                time.sleep(0.02)

    def _end(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=_STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """Graceful stop (SIGTERM): with persistence on, the broker saves its state first."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Crash the broker (SIGKILL): no goodbye to clients, no final save."""
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        """Stop gracefully (if running) and start again on the same port with the same config."""
        self.stop()
        self.start()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


MosquittoFactory = Callable[..., Mosquitto]


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[MosquittoFactory]:
    """``make(persistence=False, extra_config="", start=True) -> Mosquitto``; every broker made is killed at
    the end of the test. ``extra_config`` lines go after the listener line, so they configure it."""
    binary = find_mosquitto()
    made: list[Mosquitto] = []

    def make(*, persistence: bool = False, extra_config: str = "", start: bool = True) -> Mosquitto:
        workdir = tmp_path / f"mosquitto-{len(made)}"
        workdir.mkdir()
        broker = Mosquitto(binary, workdir, free_port(), persistence=persistence, extra_config=extra_config)
        made.append(broker)
        if start:
            broker.start()
        return broker

    yield make
    for broker in made:
        broker.kill()


@pytest.fixture
def mosquitto(mosquitto_factory: MosquittoFactory) -> Mosquitto:
    """A running anonymous mosquitto without persistence, on a free 127.0.0.1 port."""
    return mosquitto_factory()
