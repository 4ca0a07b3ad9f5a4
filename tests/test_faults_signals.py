"""Stray signals against the running daemon (``gaitwatch run`` in its own process).

Before issue 14, SIGHUP and SIGUSR1 killed the daemon at once: no STOPPING, open incidents not ended, and
systemd counts death by SIGHUP as a clean exit, so ``Restart=on-failure`` could leave a ward unmonitored after
an admin's ``kill -HUP``. Now SIGHUP reloads what can be reloaded (validating first), SIGUSR1 logs the state,
SIGUSR2 is ignored with a log line.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from test_faults_harness import base_config, daemon, write_config

from gaitwatch.daemon.reload import merge_reloadable, plan_reload
from gaitwatch.daemon.settings import parse_settings

pytestmark = pytest.mark.slow


async def test_sighup_reloads_and_stray_signals_do_not_kill(mosquitto: Any, tmp_path: Path) -> None:
    config = base_config(tmp_path, mosquitto.port)
    path = write_config(tmp_path / "daemon.toml", config)
    async with daemon(path, tmp_path, cli=True) as d:
        await d.wait_ready()
        assert d.proc is not None

        config["service"]["log_level"] = "debug"
        config["alerts"] = {"cooldown_s": 333.0}
        config["mqtt"]["keepalive_s"] = 17
        write_config(path, config)
        d.proc.send_signal(signal.SIGHUP)
        await d.until(lambda: 'msg="reloaded' in d.log_text(), "the reload")
        log = d.log_text()
        assert "applied=alerts.cooldown_s,service.log_level" in log, log
        assert "needs_restart=mqtt.keepalive_s" in log, log
        notes = d.notifications
        reloading = next(i for i, n in enumerate(notes) if n.startswith("RELOADING=1"))
        assert "MONOTONIC_USEC=" in notes[reloading]
        assert any(n.startswith("READY=1") for n in notes[reloading + 1 :]), notes

        path.write_text("[service\nbroken = ", encoding="utf-8")
        d.proc.send_signal(signal.SIGHUP)
        await d.until(lambda: "reload refused" in d.log_text(), "the refused reload")

        d.proc.send_signal(signal.SIGUSR1)
        await d.until(lambda: 'msg="state status=' in d.log_text(), "the state line")
        for stray in (signal.SIGUSR2, signal.SIGALRM, signal.SIGPWR, signal.SIGRTMIN + 3):
            d.proc.send_signal(stray)
        await d.until(lambda: "ignoring SIGUSR2" in d.log_text(), "SIGUSR2 ignored")
        await d.until(lambda: "ignoring SIGALRM" in d.log_text(), "SIGALRM ignored")
        await d.until(lambda: "ignoring SIGPWR" in d.log_text(), "SIGPWR ignored")
        await d.until(lambda: f"ignoring signal {signal.SIGRTMIN + 3}" in d.log_text(), "a real-time signal ignored")

        assert d.proc.returncode is None, "still running after SIGHUP, SIGUSR1 and stray signals"
        assert await d.stop() == 0
    assert "STOPPING=1" in d.notifications


def test_reload_plan_applies_only_what_is_safe_to_swap(tmp_path: Path) -> None:
    base: dict[str, Any] = {
        "service": {"state_dir": str(tmp_path), "log_level": "info"},
        "cameras": [{"id": "bay1", "source": "rtsp://192.0.2.1/a", "zone": "bay 1"}],
    }
    old = parse_settings(base)
    changed = {
        "service": {"state_dir": str(tmp_path / "other"), "log_level": "warning"},
        "cameras": [
            {"id": "bay1", "source": "rtsp://192.0.2.1/b", "zone": "bay 1 window", "stale_after_s": 5.0},
            {"id": "bay2", "source": "rtsp://192.0.2.2/a"},
        ],
        "alerts": {"cooldown_s": 99.0},
        "pose": {"model": "lite"},
    }
    new = parse_settings(changed)
    plan = plan_reload(old, new)
    assert set(plan.applied) == {
        "service.log_level",
        "alerts.cooldown_s",
        "cameras[bay1].zone",
        "cameras[bay1].stale_after_s",
    }
    assert set(plan.needs_restart) == {
        "service.state_dir",
        "pose.model",
        "cameras (added or removed)",
        "cameras[bay1].source",
    }
    merged = merge_reloadable(old, new)
    assert merged.service.log_level == "warning"
    assert merged.service.state_dir == old.service.state_dir, "a restart-only key keeps its running value"
    assert merged.alerts.cooldown_s == 99.0
    assert [c.id for c in merged.cameras] == ["bay1"]
    assert merged.cameras[0].zone == "bay 1 window"
    assert merged.cameras[0].source == "rtsp://192.0.2.1/a"
    assert merged.pose.model == old.pose.model
    assert plan_reload(old, old).applied == () and plan_reload(old, old).needs_restart == ()
