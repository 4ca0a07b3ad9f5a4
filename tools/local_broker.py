"""A throw-away MQTT broker on a free loopback port, for the demo and for tests: the real mosquitto binary
when it is installed, else the embedded pure-Python broker. Nothing listens beyond 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from gaitwatch.tools.embedded_broker import EmbeddedBroker

LOOPBACK = "127.0.0.1"


def find_mosquitto() -> Path | None:
    """The mosquitto binary: on PATH, or in /usr/sbin where Debian puts it (not on a normal user's PATH)."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    return Path(found) if found else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for_port(port: int, timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection(LOOPBACK, port)
        except OSError:
            if loop.time() > deadline:
                raise TimeoutError(f"no MQTT broker accepted connections on {LOOPBACK}:{port}") from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


@dataclass(frozen=True, slots=True)
class LocalBroker:
    host: str
    port: int
    kind: str  # "mosquitto" or "embedded"


@contextlib.asynccontextmanager
async def local_broker(prefer_mosquitto: bool = True) -> AsyncIterator[LocalBroker]:
    """Run a broker for the duration of the ``async with`` block."""
    binary = find_mosquitto() if prefer_mosquitto else None
    if binary is None:
        async with EmbeddedBroker(host=LOOPBACK) as embedded:
            yield LocalBroker(LOOPBACK, embedded.port, "embedded")
        return
    with tempfile.TemporaryDirectory(prefix="gaitwatch-broker-") as tmp:
        port = free_port()
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(f"listener {port} {LOOPBACK}\nallow_anonymous true\npersistence false\n", encoding="utf-8")
        # The broker's log goes to a file, never to an unread pipe (which would block it once full).
        log_path = Path(tmp) / "mosquitto.log"
        with log_path.open("wb") as log_file:
            process = await asyncio.create_subprocess_exec(
                str(binary), "-c", str(conf), stdout=subprocess.DEVNULL, stderr=log_file
            )
        try:
            try:
                await wait_for_port(port, timeout_s=10.0)
            except TimeoutError:
                err = log_path.read_text(errors="replace").strip()
                raise RuntimeError(f"mosquitto did not start: {err}") from None
            yield LocalBroker(LOOPBACK, port, "mosquitto")
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), timeout=5)
                except TimeoutError:
                    process.kill()
                    await process.wait()
