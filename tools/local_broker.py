"""A throw-away mosquitto broker on a free loopback port, for the demo, the benchmark, the soak test and the
tests: the real broker integrators use, speaking MQTT 5 and 3.1.1, never a home-made one.

``Mosquitto`` writes a generated config into a work directory, starts the binary, waits until it accepts TCP
connections and stops it (SIGTERM, or SIGKILL to simulate a crash); it can restart on the same port, with
persistence or extra configuration (password file, ACL, TLS listener) for the fault-injection tests.
``local_broker()`` wraps it for ``async with`` in a temporary directory. Nothing listens beyond 127.0.0.1.
When the binary is missing, ``MosquittoNotInstalledError`` says so and how to install it: there is no fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

LOOPBACK = "127.0.0.1"
INSTALL_HINT = (
    "install it with `bash scripts/install.sh` from the gaitwatch checkout, "
    "or `apt-get install mosquitto` (as root or with sudo) on Debian/Ubuntu"
)
# A starting broker accepts connections after ~10 ms; a slow, shared machine gets generous room.
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
# Debian installs the broker in /usr/sbin, which is not on a normal user's PATH.
_SBIN = "/usr/sbin:/usr/local/sbin"
# mosquitto logs "New client connected from 127.0.0.1:40000 as <id> (p5, c1, k60)."; p is its protocol code.
_CONNECTED = re.compile(r"New client connected from \S+ as (\S+) \(p(\d+),")
_PROTOCOLS = {"1": "3.1", "2": "3.1.1", "5": "5"}
# Logged (as a notice) once the listeners are open.
_RUNNING = re.compile(r"mosquitto version \S+ running")


class MosquittoNotInstalledError(RuntimeError):
    """The mosquitto binary is neither on $PATH nor in /usr/sbin or /usr/local/sbin."""

    def __init__(self) -> None:
        super().__init__(
            "the `mosquitto` MQTT broker binary is not installed (looked on $PATH and in /usr/sbin, /usr/local/sbin); "
            + INSTALL_HINT
        )


class BrokerStartError(RuntimeError):
    """mosquitto exited on start or never accepted connections; the message carries its log."""


def find_mosquitto() -> Path | None:
    """The mosquitto binary: on $PATH, or in /usr/sbin where Debian puts it."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path=_SBIN)
    return Path(found) if found else None


def require_mosquitto() -> Path:
    """The mosquitto binary, or ``MosquittoNotInstalledError`` naming it and the install command."""
    found = find_mosquitto()
    if found is None:
        raise MosquittoNotInstalledError
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Mosquitto:
    """A mosquitto process on ``127.0.0.1:port`` with its generated config and its log in ``workdir``.

    ``persistence`` saves sessions and queued QoS 1 messages after every change, so a SIGKILL loses nothing the
    broker acknowledged (the default saves every 30 min); ``extra_config`` lines go after the listener line, so
    they configure it."""

    workdir: Path
    binary: Path = field(default_factory=require_mosquitto)
    port: int = field(default_factory=free_port)
    persistence: bool = False
    extra_config: str = ""
    host: str = field(default=LOOPBACK, init=False)
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)

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
            # Notices include one line per client connection with its protocol (see ``connections``).
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            # As root, mosquitto would drop to user 'mosquitto', who cannot read private temporary directories.
            lines.append("user root")
        if self.persistence:
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
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self) -> None:
        """Start the broker and return once it accepts TCP connections (blocks for ~10 ms)."""
        if self.running:
            raise RuntimeError(f"mosquitto on port {self.port} is already running")
        self.write_config()
        # The log goes to a file, never to an unread pipe (which would block the broker once full).
        self._log = self.log_path.open("ab")
        started_at = self._log.tell()
        self.proc = subprocess.Popen(
            [str(self.binary), "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self._end(signal.SIGKILL)
                raise BrokerStartError(f"mosquitto exited with {code} on start:\n{self.log_text()}")
            # Its "running" line comes once its listener is open: a port that accepts before that belongs to
            # another program (the free port was taken in between), and mosquitto is about to exit.
            if _RUNNING.search(self.log_text()[started_at:]) and self._accepts():
                return
            if time.monotonic() > deadline:
                self._end(signal.SIGKILL)
                raise BrokerStartError(
                    f"mosquitto did not listen on {self.host}:{self.port} within {START_TIMEOUT_S:.0f} s:\n"
                    f"{self.log_text()}"
                )
            time.sleep(0.02)

    def _accepts(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _end(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
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

    def connections(self) -> list[tuple[str, str]]:
        """``(client id, MQTT version)`` of every connection the broker logged, in order: what the broker,
        not the client's own configuration, says was spoken ("5", "3.1.1" or "3.1")."""
        return [
            (client_id, _PROTOCOLS.get(code, f"p{code}")) for client_id, code in _CONNECTED.findall(self.log_text())
        ]


@contextlib.asynccontextmanager
async def local_broker(*, persistence: bool = False, extra_config: str = "") -> AsyncIterator[Mosquitto]:
    """Run mosquitto in a temporary directory for the duration of the ``async with`` block and stop it
    afterwards. Raises ``MosquittoNotInstalledError`` (before anything starts) or ``BrokerStartError``."""
    binary = require_mosquitto()
    with tempfile.TemporaryDirectory(prefix="gaitwatch-mosquitto-") as tmp:
        broker = Mosquitto(Path(tmp), binary, persistence=persistence, extra_config=extra_config)
        await asyncio.to_thread(broker.start)
        try:
            yield broker
        finally:
            await asyncio.to_thread(broker.stop)
