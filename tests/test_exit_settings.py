"""The ``[exits]`` table: bed-exit and chair-rise timing from the config, with the ranges ExitSettings declares."""

from __future__ import annotations

from pathlib import Path

import pytest

from gaitwatch.daemon.assembly import build_floor_stage
from gaitwatch.daemon.settings import ConfigError, load_settings, parse_settings
from gaitwatch.gait.bed_exit import ExitSettings

REPO = Path(__file__).resolve().parents[1]
CAMERA = {
    "id": "bay1",
    "source": "rtsp://192.0.2.10:554/stream1",
    "zones": [{"name": "bed 1", "kind": "bed", "polygon": [[0, 0], [100, 0], [100, 50], [0, 50]]}],
}


def test_absent_table_keeps_the_library_defaults_and_the_example_shows_them() -> None:
    settings = parse_settings({"cameras": [CAMERA]})
    assert settings.exits == ExitSettings()
    assert load_settings(REPO / "config" / "gaitwatch.example.toml").exits == ExitSettings()


def test_configured_timing_reaches_the_cameras_floor_stage() -> None:
    table = {"in_bed_s": 30.0, "confirm_s": 2.0, "leave_s": 3.0, "back_in_bed_s": 20.0, "rise_settle_s": 1.0}
    settings = parse_settings({"cameras": [CAMERA], "exits": table})
    stage = build_floor_stage("bay1", settings)
    assert stage is not None
    got = stage.exit_settings
    assert (got.in_bed_s, got.confirm_s, got.leave_s, got.back_in_bed_s, got.rise_settle_s) == (30, 2, 3, 20, 1)
    assert got.seated_s == ExitSettings().seated_s and got.priority == "high"
    assert stage.fresh().exit_settings == got


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ({"in_bed_s": -1.0}, "exits.in_bed_s"),
        ({"confirm_s": 31.0}, "exits.confirm_s"),
        ({"sts_series_s": 0.0}, "exits.sts_series_s"),
        ({"priority": "low"}, "exits.priority: unknown key"),
    ],
)
def test_out_of_range_or_unknown_keys_are_config_errors(table: dict[str, float | str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({"cameras": [CAMERA], "exits": table})
    assert needle in str(info.value)
