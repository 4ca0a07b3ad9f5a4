"""The systemd side: the shipped unit passes ``systemd-analyze verify`` and scores exposure <= 2.0 with
``systemd-analyze security --offline=yes``; the real daemon speaks sd_notify (READY, WATCHDOG, STATUS,
STOPPING) to a temporary AF_UNIX datagram socket standing in for systemd, and withholds the watchdog while
its inference thread is stuck."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_faults_harness import GUARD_S, base_config, daemon, write_config

from gaitwatch.daemon.pipeline import CameraPipeline
from gaitwatch.daemon.sdnotify import SystemdNotifier
from gaitwatch.daemon.service import Service
from gaitwatch.daemon.settings import parse_settings

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "gaitwatch.service"
MAX_EXPOSURE = 2.0


def systemd_analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (not a systemd machine); the unit cannot be checked here")
    return exe


def installed_copy(tmp_path: Path) -> Path:
    """The shipped unit with its /opt/gaitwatch/venv paths pointed at this checkout's venv, so that
    ``verify`` can check that ExecStart= exists and is executable, as on an installed machine."""
    gaitwatch = Path(sys.executable).parent / "gaitwatch"
    assert gaitwatch.is_file(), f"the gaitwatch console script is not installed in {gaitwatch.parent}"
    text = UNIT.read_text().replace("/opt/gaitwatch/venv/bin/gaitwatch", str(gaitwatch))
    unit = tmp_path / UNIT.name
    unit.write_text(text)
    return unit


def test_unit_verifies_clean(tmp_path: Path) -> None:
    exe = systemd_analyze()
    unit = installed_copy(tmp_path)
    proc = subprocess.run([exe, "verify", str(unit)], capture_output=True, text=True, check=False, timeout=60)
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 0, output
    assert unit.name not in output, f"verify warned about the unit:\n{output}"


def test_unit_exposure_is_at_most_2(tmp_path: Path) -> None:
    exe = systemd_analyze()
    unit = installed_copy(tmp_path)
    proc = subprocess.run(
        [exe, "security", "--offline=yes", str(unit)], capture_output=True, text=True, check=False, timeout=60
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    exposure = float(match.group(1))
    print(f"systemd-analyze security --offline=yes: exposure {exposure}")
    assert exposure <= MAX_EXPOSURE


def test_unit_keeps_the_deliberate_choices() -> None:
    """What the hardening must never lose, and what it must never gain (documented in the unit)."""
    directives = [
        line.split("=", 1)[0] for line in UNIT.read_text().splitlines() if "=" in line and not line.startswith("#")
    ]
    text = UNIT.read_text()
    for needed in (
        "Type=notify",
        "WatchdogSec=",
        "DynamicUser=yes",
        "StateDirectory=gaitwatch",
        "ConfigurationDirectory=gaitwatch",
        "ProtectSystem=strict",
        "DevicePolicy=closed",
        "DeviceAllow=char-video4linux",
        "RestrictAddressFamilies=",
        "SystemCallFilter=@system-service",
        "RestartPreventExitStatus=78",
    ):
        assert needed in text, needed
    assert "LoadCredential" in text
    assert "MemoryDenyWriteExecute" not in directives, "XNNPACK/oneDNN generate code at run time"


async def test_real_daemon_speaks_sd_notify(mosquitto: Any, tmp_path: Path) -> None:
    path = write_config(tmp_path / "daemon.toml", base_config(tmp_path, mosquitto.port))
    # WATCHDOG_USEC=1 s: systemd's advice (and ours) is to ping at half of it.
    async with daemon(path, tmp_path, cli=True, WATCHDOG_USEC="1000000") as d:
        await d.wait_ready()
        await d.until(lambda: sum(n == "WATCHDOG=1" for n in d.notifications) >= 3, "three watchdog pings")
        await d.until(lambda: any(n.startswith("STATUS=cameras 1/1 online") for n in d.notifications), "STATUS")
        assert await d.stop() == 0
    notes = d.notifications
    ready = next(i for i, n in enumerate(notes) if n.startswith("READY=1"))
    assert "STATUS=watching 1 camera(s)" in notes[ready]
    first_ping = notes.index("WATCHDOG=1")
    stopping = notes.index("STOPPING=1")
    assert ready < first_ping < stopping, notes
    assert notes.count("STOPPING=1") == 1
    assert any(n.startswith("STATUS=stopping") for n in notes[stopping:])


async def test_no_watchdog_pings_for_another_pid(mosquitto: Any, tmp_path: Path) -> None:
    path = write_config(tmp_path / "daemon.toml", base_config(tmp_path, mosquitto.port))
    async with daemon(path, tmp_path, cli=True, WATCHDOG_USEC="200000", WATCHDOG_PID="1") as d:
        await d.wait_ready()
        await d.until(lambda: any(n.startswith("STATUS=cameras") for n in d.notifications), "a STATUS update")
        assert await d.stop() == 0
    assert "WATCHDOG=1" not in d.notifications


@pytest.mark.parametrize("stage", ["process", "detect"])
async def test_watchdog_is_withheld_while_inference_is_stuck(
    stage: str, mosquitto: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A hung model (here: the real pipeline made to block on its next frame, in pose inference or in person
    detection, which run on different threads) must stop the pings, so that systemd restarts the daemon;
    they resume once the frame completes."""
    notify = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.setblocking(False)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # ping every 0.2 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    hang, release = threading.Event(), threading.Event()
    real = getattr(CameraPipeline, stage)

    def blocking(self: CameraPipeline, frame: Any, *args: Any, **kwargs: Any) -> Any:
        if hang.is_set():
            release.wait(GUARD_S)
        return real(self, frame, *args, **kwargs)

    monkeypatch.setattr(CameraPipeline, stage, blocking)
    settings = parse_settings(base_config(tmp_path, mosquitto.port, metrics={"enabled": False}))
    service = Service(settings, notifier=SystemdNotifier({"NOTIFY_SOCKET": str(notify)}), inference_stuck_s=0.5)
    received: list[str] = []
    loop = asyncio.get_running_loop()

    async def collect() -> None:
        while True:
            received.append((await loop.sock_recv(sock, 4096)).decode())

    collector = asyncio.create_task(collect())
    run = asyncio.create_task(service.run())
    try:
        await until(lambda: received.count("WATCHDOG=1") >= 2, "two pings")
        caplog.set_level(logging.ERROR, logger="gaitwatch.daemon.service")
        hang.set()
        await until(lambda: "inference thread stuck" in caplog.text, "the stuck inference to be noticed")
        pings = received.count("WATCHDOG=1")
        # Let the event loop run on for 8 lag samples (2 s, ten ping periods): still no ping.
        samples = _lag_count(service)
        await until(lambda: _lag_count(service) >= samples + 8, "8 more event-loop lag samples")
        assert received.count("WATCHDOG=1") == pings, "pinged while the inference thread was stuck"
        hang.clear()
        release.set()
        await until(lambda: received.count("WATCHDOG=1") > pings, "pings to resume")
        service.request_stop()
        assert await run == 0
    finally:
        release.set()
        service.request_stop()
        await asyncio.gather(run, return_exceptions=True)
        collector.cancel()
        sock.close()


async def until(predicate: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(GUARD_S):
            while not predicate():  # noqa: ASYNC110  (polls state owned by other tasks and threads)
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


def _lag_count(service: Service) -> float:
    for family in service.metrics.event_loop_lag.collect():
        for sample in family.samples:
            if sample.name.endswith("_count"):
                return float(sample.value)
    return 0.0
