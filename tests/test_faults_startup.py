"""Start-up failures and graceful shutdown of the real daemon (``python -m gaitwatch.tools.cli run``).

Every start-up failure must name the problem, exit non-zero with its sysexits code (78 config, 69 model,
66 video, 73 state directory) and leave nothing half-started: no READY=1 to systemd, no retained "online"
status on the broker. SIGTERM must finish the current frame, end the open alerts, try to flush the outbox,
publish the empty active-alerts snapshot and "offline", and exit 0.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from test_faults_harness import GUARD_S, Integrator, base_config, check_alerts, daemon, write_config

from gaitwatch.tools.local_broker import free_port

# Each case starts a real daemon process (~2 s of imports and model loading on a 2-core PC).
pytestmark = pytest.mark.slow


def run_cli(config: Path, notify: Path, *, env: dict[str, str] | None = None) -> tuple[int, str, list[str]]:
    """Run ``gaitwatch run --config`` to completion with a private notify socket; returns (exit code, stderr,
    sd_notify messages)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "gaitwatch.tools.cli", "run", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=GUARD_S,
            env={**os.environ, "NOTIFY_SOCKET": str(notify), **(env or {})},
            check=False,
        )
        sock.setblocking(False)
        messages: list[str] = []
        while True:
            try:
                messages.append(sock.recv(4096).decode())
            except BlockingIOError:
                break
    finally:
        sock.close()
    return proc.returncode, proc.stderr, messages


async def retained_status(port: int, topic: str) -> bytes | None:
    """The retained message on ``topic``, or None. Deterministic without waiting: the broker sends retained
    messages on subscribe, before a marker message published afterwards on the same connection."""
    marker = f"test/marker/{os.getpid()}"
    async with aiomqtt.Client("127.0.0.1", port, identifier="probe", timeout=5.0) as client:
        await client.subscribe(topic, qos=1)
        await client.subscribe(marker, qos=1)
        await client.publish(marker, b"end", qos=1)
        async with asyncio.timeout(GUARD_S):
            async for message in client.messages:
                if str(message.topic) == marker:
                    return None
                payload = message.payload
                return payload if isinstance(payload, bytes) else None
    return None


def _garbage(path: Path, size: int = 4096) -> str:
    path.write_bytes(os.urandom(size))
    return str(path)


Case = Callable[[Path], dict[str, Any]]

CASES: dict[str, tuple[Case, int, list[str]]] = {
    "unknown key": (lambda t: {"pose": {"modle": "full"}}, 78, ["pose.modle", "did you mean 'model'"]),
    "tls CA file missing": (
        lambda t: {"mqtt": {"tls": {"ca_file": str(t / "no-ca.pem")}}},
        78,
        ["mqtt.tls.ca_file", "no-ca.pem"],
    ),
    "password file missing": (
        lambda t: {"mqtt": {"password_file": str(t / "no-secret")}},
        78,
        ["mqtt.password_file", "no-secret"],
    ),
    "model missing": (
        lambda t: {"pose": {"model_path": str(t / "gone.tflite")}},
        69,
        ["pose model file not found", "gone.tflite"],
    ),
    "model corrupt": (
        lambda t: {"pose": {"model_path": _garbage(t / "bad.tflite")}},
        69,
        ["bad.tflite", "cannot be loaded"],
    ),
    "video missing": (
        lambda t: {"cameras": [{"id": "bay1", "source": str(t / "none.mp4")}]},
        66,
        ["camera bay1", "none.mp4", "does not exist"],
    ),
    "video undecodable": (
        lambda t: {"cameras": [{"id": "bay1", "source": _garbage(t / "junk.mp4")}]},
        66,
        ["camera bay1", "junk.mp4", "cannot decode"],
    ),
    "state dir is a file": (
        lambda t: {"service": {"state_dir": _garbage(t / "state-file", 10)}},
        73,
        ["cannot create state directory", "state-file"],
    ),
    "outbox is corrupt": (
        lambda t: {"service": {"state_dir": str(_corrupt_outbox(t))}},
        73,
        ["outbox.sqlite3", "not an SQLite database"],
    ),
}


def _corrupt_outbox(tmp: Path) -> Path:
    state = tmp / "state-corrupt"
    state.mkdir()
    _garbage(state / "outbox.sqlite3")
    return state


def _merge(config: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    for section, values in changes.items():
        if isinstance(values, list):
            config[section] = values
        else:
            config.setdefault(section, {}).update(values)
    return config


@pytest.mark.parametrize("case", list(CASES))
async def test_startup_failure_is_named_exits_non_zero_and_starts_nothing(
    case: str, mosquitto: Any, tmp_path: Path
) -> None:
    make, code, needles = CASES[case]
    config = _merge(base_config(tmp_path, mosquitto.port), make(tmp_path))
    path = write_config(tmp_path / "daemon.toml", config)
    returncode, stderr, messages = await asyncio.to_thread(run_cli, path, tmp_path / "notify")
    assert returncode == code, stderr
    for needle in needles:
        assert needle in stderr, stderr
    assert "Traceback" not in stderr
    assert not any("READY=1" in m for m in messages), "never READY after a failed start-up"
    assert await retained_status(mosquitto.port, "gaitwatch/v1/ward/pc1/status") is None
    if code == 78 and case != "unknown key":
        # Config problems are found before anything touches the disk.
        assert not (tmp_path / "state-pc1").exists()
        assert any(m.startswith("STATUS=startup failed") for m in messages)


def test_full_state_directory_is_named_and_exits_73(tmp_path: Path) -> None:
    """The real thing: the state directory on a tmpfs (private mount namespace) that is already full."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs util-linux unshare to mount a private tmpfs")
    mnt = tmp_path / "small"
    mnt.mkdir()
    config = base_config(tmp_path, free_port(), service={"state_dir": str(mnt / "state")})
    path = write_config(tmp_path / "daemon.toml", config)
    script = (
        f"mount -t tmpfs -o size=256k gaitwatch-test {mnt} || exit 77; mkdir {mnt}/state; "
        f"cat /dev/zero > {mnt}/fill 2>/dev/null; "
        f'exec {sys.executable} -m gaitwatch.tools.cli run --config "$0"'
    )
    proc = subprocess.run(
        [unshare, "--map-root-user", "--mount", "sh", "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=GUARD_S,
        check=False,
    )
    if proc.returncode == 77 or "unshare failed" in proc.stderr:
        pytest.skip(f"cannot mount a private tmpfs here: {proc.stderr.strip()}")
    assert proc.returncode == 73, proc.stderr
    assert "the disk" in proc.stderr and "full" in proc.stderr, proc.stderr
    assert str(mnt / "state") in proc.stderr


async def test_sigterm_ends_open_alerts_flushes_and_publishes_offline(mosquitto: Any, tmp_path: Path) -> None:
    """A camera that is down makes an open camera_offline incident; SIGTERM must close it (its end phase
    delivered), leave an empty active-alerts snapshot and the offline status, and exit 0."""
    dead = f"http://127.0.0.1:{free_port()}/stream.mjpg"  # nothing listens there
    config = base_config(tmp_path, mosquitto.port)
    config["cameras"].append(
        {
            "id": "door",
            "source": dead,
            "stale_after_s": 0.5,
            "open_timeout_s": 0.5,
            "reconnect_initial_s": 0.1,
            "reconnect_max_s": 0.3,
        }
    )
    path = write_config(tmp_path / "daemon.toml", config)
    filters = ["gaitwatch/v1/+/+/alert/#", "gaitwatch/v1/+/+/status", "gaitwatch/v1/+/+/active_alerts"]
    async with Integrator(mosquitto.port, filters) as integrator, daemon(path, tmp_path, cli=True) as d:
        await d.wait_ready()

        def door_offline() -> list[dict[str, Any]]:
            return [a for a in integrator.alerts() if a["type"] == "camera_offline" and a["camera"] == "door"]

        await integrator.until(lambda: len(door_offline()) == 1, "the camera_offline alert")
        await integrator.until(
            lambda: any(len(s["alerts"]) == 1 for s in integrator.on("/active_alerts")), "the active snapshot"
        )
        await d.until(lambda: any("offline: door" in n for n in d.notifications), "STATUS naming the camera")
        assert await d.stop() == 0
        await integrator.until(lambda: len(door_offline()) == 2, "the end of the camera_offline incident")
        await integrator.until(
            lambda: bool(integrator.on("/pc1/status")) and integrator.on("/pc1/status")[-1]["state"] == "offline",
            "the offline status",
        )
    start, end = door_offline()
    assert (start["phase"], end["phase"]) == ("start", "end")
    assert start["incident_id"] == end["incident_id"] and start["category"] == "technical"
    check_alerts(integrator.alerts())
    assert integrator.on("/active_alerts")[-1]["alerts"] == []
    log = d.log_text()
    assert "Traceback" not in log
    assert "level=info logger=gaitwatch.daemon.service msg=stopping" in log
    frames = int(log.split('msg="stopped frames=')[1].split()[0])
    assert frames > 0
    notes = d.notifications
    ready = next(i for i, n in enumerate(notes) if "READY=1" in n)
    stopping = next(i for i, n in enumerate(notes) if "STOPPING=1" in n)
    assert ready < stopping
    assert sum("STOPPING=1" in n for n in notes) == 1


async def test_sigterm_with_the_broker_down_exits_0_and_keeps_the_alerts(
    mosquitto_factory: Any, tmp_path: Path
) -> None:
    broker = mosquitto_factory(start=False)
    path = write_config(tmp_path / "daemon.toml", base_config(tmp_path, broker.port))
    async with daemon(path, tmp_path) as d:
        await d.wait_ready()
        await d.alerts(5)
        await d.until(lambda: "done 5" in d.lines, "5 alerts stored")
        assert await d.stop() == 0
    await asyncio.to_thread(broker.start)
    async with Integrator(broker.port) as integrator, daemon(path, tmp_path) as again:
        await again.wait_ready()
        await integrator.until(lambda: integrator.alert_ids() >= set(d.stored), "the 5 kept alerts")
        assert await again.stop() == 0
    check_alerts(integrator.alerts())
