"""Start-up checks one by one, in-process and without a broker: each failure is a ``StartupError`` (or, for
the MQTT files, a ``ConfigError``) with its exit code and a message naming the problem, and leaves nothing
open or locked behind. (``test_faults_startup.py`` runs the same failures through the real daemon process.)"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any

import pytest

from gaitwatch.daemon.metrics import DaemonMetrics
from gaitwatch.daemon.settings import ConfigError, Settings, parse_settings
from gaitwatch.daemon.startup import (
    EX_CANTCREAT,
    EX_NOINPUT,
    EX_UNAVAILABLE,
    StartupError,
    check_cameras,
    load_models,
    mqtt_config,
    open_outbox,
    serve_metrics,
)
from gaitwatch.daemon.state_lock import StateDirLock


def settings(tmp_path: Path, **sections: Any) -> Settings:
    config: dict[str, Any] = {
        "service": {"site": "ward", "host": "pc1", "state_dir": str(tmp_path / "state")},
        "cameras": [{"id": "bay1", "source": "rtsp://127.0.0.1:9/bay1"}],
        "mqtt": {"host": "127.0.0.1", "port": 1883},
        "metrics": {"enabled": False},
    }
    for name, values in sections.items():
        if isinstance(values, list):
            config[name] = values
        else:
            config.setdefault(name, {}).update(values)
    return parse_settings(config)


def test_mqtt_config_reads_the_password_now_and_fails_on_a_file_gone_since_the_check(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("horse-battery\n")
    s = settings(tmp_path, mqtt={"username": "gw", "password_file": str(secret)})
    config = mqtt_config(s)
    assert config is not None
    assert (config.password, config.client_id) == ("horse-battery", "gaitwatch-ward-pc1")
    secret.unlink()
    with pytest.raises(ConfigError, match="secret"):
        mqtt_config(s)
    assert mqtt_config(settings(tmp_path, mqtt={"enabled": False})) is None


def test_mqtt_config_refuses_a_ca_file_that_is_not_a_certificate(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(os.urandom(64))
    # Refused by the settings check or, at the latest, here (loading the TLS context), never later.
    with pytest.raises(ConfigError, match=r"ca\.pem|ca_file"):
        mqtt_config(settings(tmp_path, mqtt={"tls": {"ca_file": str(ca)}}))


def test_open_outbox_locks_the_state_directory_for_one_daemon(tmp_path: Path) -> None:
    s = settings(tmp_path)
    outbox, lock = open_outbox(s)
    try:
        assert (tmp_path / "state" / "outbox.sqlite3").exists()
        with pytest.raises(StartupError, match="in use") as second:
            open_outbox(s)
        assert second.value.exit_code == EX_CANTCREAT
    finally:
        outbox.close()
        lock.release()
    outbox, lock = open_outbox(s)  # free again once the first one let go
    outbox.close()
    lock.release()


def test_a_state_directory_that_is_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "state").write_bytes(b"x")
    with pytest.raises(StartupError, match="cannot create state directory") as failed:
        open_outbox(settings(tmp_path))
    assert failed.value.exit_code == EX_CANTCREAT
    assert str(tmp_path / "state") in str(failed.value)


def test_a_corrupt_outbox_names_salvage_and_leaves_the_directory_unlocked(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "outbox.sqlite3").write_bytes(os.urandom(4096))
    with pytest.raises(StartupError, match="gaitwatch outbox salvage") as failed:
        open_outbox(settings(tmp_path))
    assert failed.value.exit_code == EX_CANTCREAT
    lock = StateDirLock(state)
    lock.acquire()  # raises if the failed start-up kept it
    lock.release()


def test_a_missing_video_file_fails_before_the_models(tmp_path: Path) -> None:
    s = settings(tmp_path, cameras=[{"id": "bay1", "source": str(tmp_path / "none.mp4")}])
    with pytest.raises(StartupError, match="does not exist") as failed:
        check_cameras(s)
    assert failed.value.exit_code == EX_NOINPUT
    assert "bay1" in str(failed.value)


def test_a_network_camera_that_is_down_is_not_a_start_up_failure(tmp_path: Path) -> None:
    (source,) = check_cameras(settings(tmp_path))
    assert source.camera_id == "bay1"


def test_a_missing_model_is_exit_69(tmp_path: Path) -> None:
    s = settings(tmp_path, pose={"model_path": str(tmp_path / "gone.tflite")})
    with pytest.raises(StartupError, match=r"gone\.tflite") as failed:
        load_models(s)
    assert failed.value.exit_code == EX_UNAVAILABLE


def test_a_taken_metrics_port_is_named(tmp_path: Path) -> None:
    metrics = DaemonMetrics(version="test", cameras=["bay1"])
    assert serve_metrics(settings(tmp_path), metrics) is None, "metrics off: no server"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        s = settings(tmp_path, metrics={"enabled": True, "address": "127.0.0.1", "port": port})
        with pytest.raises(StartupError, match=re.escape(f"cannot serve metrics on 127.0.0.1:{port}")) as failed:
            serve_metrics(s, metrics)
    assert failed.value.exit_code == EX_CANTCREAT
