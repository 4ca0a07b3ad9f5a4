"""Configuration: the example config is valid, and every mistake is rejected with its key path and value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gaitwatch.daemon.settings import EX_CONFIG, ConfigError, load_settings, parse_settings, read_secret
from gaitwatch.gait.settings import AlertPolicySettings, GaitSettings
from gaitwatch.tools.cli import main
from gaitwatch.tracking.tracker import TrackerSettings

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "gaitwatch.example.toml"


def test_example_config_is_valid_and_documents_the_defaults() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.cameras[0].id == "bay1"
    # The example must show the defaults: a config with only the required keys gives the same values.
    minimal = parse_settings({"cameras": [{"id": "bay1", "source": "rtsp://192.0.2.10:554/stream1"}]})
    for section in ("detector", "tracker", "pose", "gait", "alerts", "metrics", "outbox"):
        assert getattr(settings, section) == getattr(minimal, section), section
    assert settings.mqtt.model_dump(exclude={"client_id"}) == minimal.mqtt.model_dump(exclude={"client_id"})


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gaitwatch.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_misspelled_key_is_named_with_its_path_and_a_suggestion(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[cameras]]\nid = "a"\nsource = "x.mp4"\nfsp = 7\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert "cameras[0].fsp" in message
    assert "unknown key" in message
    assert "did you mean 'fps'" in message
    assert str(path) in message


def test_bad_value_names_key_and_value(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[cameras]]\nid = "a"\nsource = "x.mp4"\n[pose]\nmodel = "huge"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "pose.model" in str(info.value)
    assert "'huge'" in str(info.value)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "cameras: required key is missing"),
        ('[[cameras]]\nid = "a"\nsource = "x"\n[[cameras]]\nid = "a"\nsource = "y"\n', "repeated: a"),
        ('[[cameras]]\nid = "a b"\nsource = "x"\n', "cameras[0].id"),
        ('[[cameras]]\nid = "a"\nsource = "x"\n[alerts]\nk_start = 9\n', "hysteresis"),
        ('[[cameras]]\nid = "a"\nsource = "x"\n[detector]\nkind = "onnx"\n', "onnx_model"),
        ('[[cameras]]\nid = "a"\nsource = "x"\n[gait]\nwindow_s = -1\n', "gait.window_s"),
        ("[[cameras]\n", "not valid TOML"),
        ('[[cameras]]\nid = "a"\nsource = "x"\nstale_after_s = 0\n', "cameras[0].stale_after_s"),
        ('[[cameras]]\nid = "a"\nsource = "x"\n[mqtt]\nack_topic = "acks/#"\n', "mqtt.ack_topic"),
        ('[[cameras]]\nid = "a"\nsource = "x"\n[mqtt]\nack_timeout_s = -1\n', "mqtt.ack_timeout_s"),
        ('[[cameras]]\nid = "a"\nsource = "x"\n[outbox]\ncleanup_interval_s = 0\n', "outbox.cleanup_interval_s"),
    ],
)
def test_invalid_configs_are_rejected(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, text))
    assert needle in str(info.value)


def test_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_check_config_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLE)]) == 0
    assert "OK" in capsys.readouterr().out
    bad = _write(tmp_path, '[[cameras]]\nid = "a"\nsource = "x.mp4"\n[tracker]\nmax_age = 2\n')
    assert main(["check-config", str(bad)]) == EX_CONFIG
    err = capsys.readouterr().err
    assert "tracker.max_age" in err and "max_age_s" in err


def test_console_script_exits_78_on_a_misspelled_key(tmp_path: Path) -> None:
    bad = _write(tmp_path, '[[cameras]]\nid = "a"\nsource = "x.mp4"\n[mqtt]\nhots = "broker"\n')
    for command in (["check-config", str(bad)], ["run", "--config", str(bad)]):
        proc = subprocess.run(
            [sys.executable, "-m", "gaitwatch.tools.cli", *command], capture_output=True, text=True, check=False
        )
        assert proc.returncode == EX_CONFIG, proc.stderr
        assert "mqtt.hots" in proc.stderr


def test_secret_is_read_from_credentials_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mqtt-password").write_text("s3cret\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert read_secret(Path("mqtt-password")) == "s3cret"
    with pytest.raises(ConfigError, match="not found"):
        read_secret(Path("other"))


def test_search_regions_default_by_detector_kind() -> None:
    """HOG costs grow with the area scanned, so it searches regions between 2 s full scans; a fixed-input ONNX
    network would run a whole pass per region, so it scans whole frames unless the site says otherwise; with the
    default nanodet+blazepose NanoDet sees every whole frame and the 2 s pace BlazePose's whole-frame scans."""
    from gaitwatch.daemon.assembly import search_region_settings

    camera = {"cameras": [{"id": "a", "source": "x.mp4"}]}
    hog = search_region_settings(parse_settings({**camera, "detector": {"kind": "hog"}}))
    assert (hog.full_frame_interval_s, hog.min_region_w, hog.min_region_h) == (2.0, 50, 99)  # 64x128 / 1.3
    default = search_region_settings(parse_settings(camera))
    assert (default.full_frame_interval_s, default.min_region_w, default.min_region_h) == (2.0, 64, 128)
    onnx = {"kind": "onnx", "onnx_model": "/etc/gaitwatch/person.onnx"}
    assert search_region_settings(parse_settings({**camera, "detector": onnx})).full_frame_interval_s == 0.0
    tuned = {**onnx, "full_frame_interval_s": 3.0}
    assert search_region_settings(parse_settings({**camera, "detector": tuned})).full_frame_interval_s == 3.0
    always = {"full_frame_interval_s": 0.0}
    assert search_region_settings(parse_settings({**camera, "detector": always})).full_frame_interval_s == 0.0


def test_a_huge_config_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[cameras]]\nid = "a"\nsource = "x.mp4"\n' + "# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="larger than 1024 KiB"):
        load_settings(path)


def test_every_tracker_key_reaches_the_tracker() -> None:
    """A key declared in [tracker] but not passed on would be accepted and silently ignored."""
    from gaitwatch.daemon.settings import TRACKER_TABLE

    changed = {"min_hits": 4, "max_age_s": 3.5, "iou_threshold": 0.21, "min_score": 0.11, "high_score": 0.61,
               "new_track_score": 0.66, "score_noise_floor": 0.45, "recovery_iou_threshold": 0.33,
               "mahalanobis_weight": 0.5, "lost_box_growth_per_s": 0.1}  # fmt: skip
    assert set(changed) == set(TRACKER_TABLE.keys), "every key is exercised here"
    settings = parse_settings({"cameras": [{"id": "a", "source": "x.mp4"}], "tracker": changed})
    library = settings.tracker
    assert isinstance(library, TrackerSettings)
    assert {k: getattr(library, k) for k in changed} == changed


def test_every_borrowed_key_reaches_its_library_object() -> None:
    """Keys of the tables that feed several library objects ([detector], [detector.blazepose], [pose]) reach the
    library field they name, whatever the key is called in TOML."""
    from gaitwatch.daemon.library_settings import borrowed_keys, library_settings

    settings = parse_settings(
        {
            "cameras": [{"id": "a", "source": "x.mp4"}],
            "detector": {"recovery_crops_per_frame": 3, "recovery_min_height": 0.11, "onnx_model": "/m.onnx",
                         "onnx_min_score": 0.21, "onnx_person_class": 2, "onnx_nms_iou": 0.41,
                         "blazepose": {"min_score": 0.31, "nms_iou": 0.32, "tile_fraction": 0.33,
                                       "near_tile_fraction": 0.37, "tile_overlap": 0.34,
                                       "min_tile_px": 99, "model_path": "/d.tflite", "refine_min_presence": 0.36}},
            "pose": {"model": "lite", "model_path": "/p.tflite", "num_threads": 2, "roi_scale": 1.4,
                     "second_pass": "on", "max_rate_hz": 11.0, "stationary_rate_hz": 2.5},
        }
    )  # fmt: skip
    checked = 0
    for section in (settings.detector, settings.detector.blazepose, settings.pose):
        defaults = type(section)()
        for key, source in borrowed_keys(type(section)):
            assert getattr(section, key) != getattr(defaults, key), f"{key}: give it a non-default value here"
            assert getattr(library_settings(source.cls, section), source.name) == getattr(section, key), key
            checked += 1
    assert checked == 21


def test_a_value_the_library_refuses_is_a_config_error_naming_the_key() -> None:
    """Library invariants are checked while the config is validated: check-config refuses what would crash the
    daemon when it builds its pipeline (before, `min_score` above `high_score` passed check-config)."""
    camera: dict[str, Any] = {"cameras": [{"id": "a", "source": "x.mp4"}]}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tracker": {"min_score": 0.7}}, "  tracker.min_score: min_score (0.7) must not exceed high_score (0.45)"),
        ({"detector": {"blazepose": {"tile_fraction": 0.05}}}, "  detector.blazepose.tile_fraction: tile_fraction"),
        ({"pose": {"stationary_rate_hz": 20.0}}, "  pose.stationary_rate_hz: stationary_rate_hz must not exceed"),
        ({"alerts": {"k_end": 4}}, "  alerts: needs 0 <= k_end < k_start <= window_count (hysteresis)"),
        ({"detector": {"hog": {"upscale": 0.1}}}, "  detector.hog.upscale: Input should be greater than or equal"),
    ]
    for section, needle in cases:
        with pytest.raises(ConfigError) as info:
            parse_settings({**camera, **section})
        assert needle in str(info.value), str(info.value)


def test_library_tables_are_the_library_objects_and_dump_as_their_toml_table() -> None:
    """[gait], [alerts], [tracker] and [detector.hog] validate into the library's own frozen settings; dumped
    (the reload diff), they show exactly their TOML keys."""
    settings = parse_settings({"cameras": [{"id": "a", "source": "x.mp4"}], "gait": {"window_s": 10.0}})
    assert settings.gait == GaitSettings(window_s=10.0)
    assert settings.alerts == AlertPolicySettings()
    assert settings.tracker == TrackerSettings(high_score=0.45, new_track_score=0.5)  # the default detector's
    dumped = settings.model_dump(mode="json")
    assert dumped["gait"] == {"window_s": 10.0, "hop_s": 1.0, "join_max_gap_s": 3.0}
    assert set(dumped["alerts"]) == {"window_count", "k_start", "k_end", "cooldown_s", "update_interval_s",
                                     "min_confidence"}  # fmt: skip
    assert parse_settings(settings.model_dump(mode="json")) == settings
