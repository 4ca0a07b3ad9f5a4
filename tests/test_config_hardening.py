"""Config hardening (issue 14): what check-config accepts also runs, files it names exist, secrets never shown.

Before: `open_timeout_s = inf` passed check-config and crashed a file camera (OpenCV takes int milliseconds);
`mqtt.host = ""` reached READY and never connected; check-config printed `rtsp://admin:PASSWORD@...` (into the
journal, through ExecStartPre=) and echoed a misplaced `password = "..."`; it never looked at the files the
config names.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_faults_harness import base_config, daemon, to_toml, write_config
from videogen import write_numbered_video

from gaitwatch.daemon.redact import redact_text, redact_value
from gaitwatch.daemon.settings import EX_CONFIG, ConfigError, parse_settings
from gaitwatch.tools.local_broker import free_port

SECRET = "S3cretPW"
TOKEN = "T0kenXYZ"
URL = f"rtsp://admin:{SECRET}@192.0.2.7:554/stream1?token={TOKEN}"


def _check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gaitwatch.tools.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _minimal(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "service": {"state_dir": str(tmp_path / "state")},
        "cameras": [{"id": "bay1", "source": URL}],
        "mqtt": {"enabled": False},
    }
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    return config


def test_redaction_masks_url_passwords_secret_query_parameters_and_secret_keys() -> None:
    assert redact_text(URL) == "rtsp://admin:***@192.0.2.7:554/stream1?token=***"
    assert redact_text("http://cam/x?user=a&pwd=b&res=hd") == "http://cam/x?user=a&pwd=***&res=hd"
    assert redact_text("/dev/video0") == "/dev/video0"
    # A raw '@' in the password: FFmpeg splits user info at the last '@' before the path, so must we.
    assert redact_text("rtsp://admin:p@ss@10.0.0.1/a@b") == "rtsp://admin:***@10.0.0.1/a@b"
    assert redact_value({"password": "x", "key_file": "/etc/k.pem", "nested": [URL]}) == {
        "password": "***",
        "key_file": "/etc/k.pem",
        "nested": [redact_text(URL)],
    }


def test_check_config_never_prints_a_secret(tmp_path: Path) -> None:
    ok = write_config(tmp_path / "ok.toml", _minimal(tmp_path))
    proc = _check_config(ok)
    assert proc.returncode == 0, proc.stderr
    assert "rtsp://admin:***@192.0.2.7" in proc.stdout
    bad = _minimal(tmp_path, mqtt={"password": SECRET + "2"})
    bad["cameras"][0].update(reconnect_initial_s=10.0, reconnect_max_s=1.0)  # the error echoes the camera
    proc = _check_config(write_config(tmp_path / "bad.toml", bad))
    assert proc.returncode == EX_CONFIG
    assert "mqtt.password: unknown key" in proc.stderr and "password_file" in proc.stderr
    assert "cameras[0]" in proc.stderr
    for text in (proc.stdout, proc.stderr):
        assert SECRET not in text and TOKEN not in text, text


async def test_the_running_daemon_never_logs_a_camera_password(tmp_path: Path) -> None:
    url = f"rtsp://admin:{SECRET}@127.0.0.1:{free_port()}/stream1?token={TOKEN}"  # nothing listens there
    camera = {"id": "door", "source": url, "open_timeout_s": 0.5, "stale_after_s": 1.0, "reconnect_max_s": 1.0}
    config = base_config(tmp_path, free_port(), camera=camera, mqtt={"enabled": False})
    path = write_config(tmp_path / "daemon.toml", config)
    async with daemon(path, tmp_path, cli=True) as d:
        await d.wait_ready()
        await d.until(lambda: "camera=door event=offline" in d.log_text(), "the camera to be reported offline")
        assert await d.stop() == 0
    log = d.log_text()
    assert "unencrypted protocol" in log, "the plaintext-password warning"
    assert SECRET not in log and TOKEN not in log
    assert not any(SECRET in n for n in d.notifications)


HOSTILE = [
    ("cameras.0.open_timeout_s", {"cameras": [{"id": "a", "source": "x.mp4", "open_timeout_s": float("inf")}]}),
    ("cameras.0.open_timeout_s", {"cameras": [{"id": "a", "source": "x.mp4", "open_timeout_s": 2.2e6}]}),
    ("cameras.0.read_timeout_s", {"cameras": [{"id": "a", "source": "x.mp4", "read_timeout_s": float("nan")}]}),
    ("cameras.0.reconnect_max_s", {"cameras": [{"id": "a", "source": "x.mp4", "reconnect_max_s": 1e10}]}),
    ("cameras.0.stale_after_s", {"cameras": [{"id": "a", "source": "x.mp4", "stale_after_s": 1e9}]}),
    ("mqtt.timeout_s", {"mqtt": {"timeout_s": float("inf")}}),
    ("mqtt.host", {"mqtt": {"host": ""}}),
    ("mqtt.host", {"mqtt": {"host": "broker with spaces"}}),
    ("mqtt.reconnect_max_s", {"mqtt": {"reconnect_max_s": 1e10}}),
    ("mqtt", {"mqtt": {"reconnect_initial_s": 30.0, "reconnect_max_s": 1.0}}),
    ("mqtt.ack_timeout_s", {"mqtt": {"ack_timeout_s": float("inf")}}),
    ("outbox.max_rows", {"outbox": {"max_rows": 10**12}}),
    ("outbox.keep_published_s", {"outbox": {"keep_published_s": float("inf")}}),
    ("alerts.cooldown_s", {"alerts": {"cooldown_s": 1e12}}),
    ("tracker.max_age_s", {"tracker": {"max_age_s": 1e6}}),
    ("detector.hog.hit_threshold", {"detector": {"hog": {"hit_threshold": float("-inf")}}}),
    ("service.site", {"service": {"site": "s" * 500}}),
    ("mqtt.port", {"mqtt": {"port": 70000}}),
    ("mqtt.keepalive_s", {"mqtt": {"keepalive_s": 0}}),
    ("metrics.port", {"metrics": {"port": -1}}),
    ("detector.onnx_person_class", {"detector": {"onnx_person_class": 10**9}}),
    ("cameras", {"cameras": [{"id": f"c{i}", "source": f"rtsp://192.0.2.1/{i}"} for i in range(33)]}),
]


@pytest.mark.parametrize(("key", "config"), HOSTILE, ids=[f"{k}-{i}" for i, (k, _) in enumerate(HOSTILE)])
def test_values_that_could_not_run_are_refused_naming_the_key(key: str, config: dict[str, Any]) -> None:
    data = {"cameras": [{"id": "a", "source": "x.mp4"}], **config}
    with pytest.raises(ConfigError) as err:
        parse_settings(data)
    path = key.replace(".0.", "[0].")
    assert f"  {path}" in str(err.value), str(err.value)


def test_check_config_checks_the_files_the_config_names(tmp_path: Path) -> None:
    config = _minimal(
        tmp_path,
        mqtt={"enabled": True, "password_file": str(tmp_path / "no-such-password"), "tls": {"ca_file": "/nope.pem"}},
        pose={"model_path": str(tmp_path / "missing.tflite")},
    )
    config["cameras"].append({"id": "file", "source": str(tmp_path / "missing.mp4")})
    proc = _check_config(write_config(tmp_path / "refs.toml", config))
    assert proc.returncode == EX_CONFIG, proc.stdout
    for needle in ("mqtt.password_file", "no-such-password", "mqtt.tls.ca_file", "pose.model_path", "cameras[1]"):
        assert needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_check_config_warns_about_plaintext_credentials_and_an_exposed_metrics_port(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt-password"
    secret.write_text("pw\n", encoding="utf-8")
    clip = write_numbered_video(tmp_path / "clip.avi", 7, 7.0)
    config = _minimal(
        tmp_path,
        mqtt={"enabled": True, "username": "gaitwatch", "password_file": str(secret)},
        metrics={"address": "0.0.0.0"},
    )
    config["cameras"] = [{"id": "file", "source": str(clip)}]
    path = tmp_path / "warn.toml"
    path.write_text(to_toml(config), encoding="utf-8")
    proc = _check_config(path)
    assert proc.returncode == 0, proc.stderr
    assert "warning: mqtt: the user name and password go to" in proc.stderr
    assert "warning: metrics.address = '0.0.0.0'" in proc.stderr


def test_check_config_reports_every_unusable_file_not_just_the_first_kind(tmp_path: Path) -> None:
    """A missing password file must not hide a CA file that is not a certificate, nor a detector model typo."""
    garbage = tmp_path / "ca.pem"
    garbage.write_text("this is not a certificate\n", encoding="utf-8")
    config = _minimal(
        tmp_path,
        mqtt={"enabled": True, "password_file": str(tmp_path / "no-such-password"), "tls": {"ca_file": str(garbage)}},
        detector={
            "kind": "nanodet+blazepose",
            "blazepose": {"model_path": str(tmp_path / "missing-detector.tflite")},
            "nanodet": {"model_path": str(tmp_path / "missing-nanodet.onnx")},
        },
    )
    proc = _check_config(write_config(tmp_path / "refs.toml", config))
    assert proc.returncode == EX_CONFIG, proc.stdout
    for needle in (
        "mqtt.password_file",
        "mqtt.tls:",
        "detector.blazepose.model_path",
        "missing-detector.tflite",
        "detector.nanodet.model_path",
        "missing-nanodet.onnx",
    ):
        assert needle in proc.stderr, proc.stderr
