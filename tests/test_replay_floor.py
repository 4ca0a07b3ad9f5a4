"""``gaitwatch replay RECORDING --config CFG --camera ID``: the camera's floor calibration and zones, as the daemon
builds them, give the replayed windows metres and zones and raise the zone alerts offline too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from gaitwatch.daemon.settings import EX_CONFIG
from gaitwatch.gait.offline.ward_scenes import Bed, bed_exit_script, floor_marks, render, script_times, ward_camera
from gaitwatch.gait.recording import Recording
from gaitwatch.gait.types import GaitWindow
from gaitwatch.tools.cli import main


def _scene(tmp_path: Path) -> tuple[Path, Path, float]:
    """A generated bed exit seen by the ward camera, saved as a recording; a config with that camera calibrated
    from its floor marks and the bed as a zone ("bay1"), and an uncalibrated one ("bay2"). Returns the paths and
    the time the patient began to stand."""
    rng = np.random.default_rng(5)
    camera, bed = ward_camera(), Bed()
    script = bed_exit_script(bed, rng, 1.70)
    t, kp, world = render(script, camera, rng, fps=15.0, height_m=1.70)
    recording = tmp_path / "bed_exit.npz"
    Recording.single(GaitWindow(1, t, kp, world), {"camera": "bay1", "fps": 15.0}).save(recording)
    img, marks = floor_marks(camera)
    points = ", ".join(f"[{u:g}, {v:g}, {x:g}, {y:g}]" for (u, v), (x, y) in zip(img, marks, strict=True))
    polygon = ", ".join(f"[{x:g}, {y:g}]" for x, y in bed.polygon)
    config = tmp_path / "gaitwatch.toml"
    config.write_text(
        f'[service]\nstate_dir = "{tmp_path / "state"}"\n\n'
        '[[cameras]]\nid = "bay2"\nsource = "rtsp://192.0.2.11:554/stream1"\n\n'
        '[[cameras]]\nid = "bay1"\nsource = "rtsp://192.0.2.10:554/stream1"\n'
        f"[cameras.calibration]\nimage_size_px = [1280, 720]\npoints = [{points}]\n"
        f'[[cameras.zones]]\nname = "bed 1"\nkind = "bed"\npolygon = [{polygon}]\nsurface_height_m = {bed.height}\n',
        encoding="utf-8",
    )
    return recording, config, script_times(script)["standing"]


def _replay(*argv: str, out: Path) -> dict[str, Any]:
    assert main(["replay", *argv, "--quiet", "--json", str(out)]) == 0
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def test_replay_uses_the_cameras_calibration_and_zones(tmp_path: Path) -> None:
    recording, config, standing = _scene(tmp_path)
    # The recording names its camera (bay1): its calibration is used without --camera.
    for argv in (
        (str(recording), "--config", str(config)),
        (str(recording), "--config", str(config), "--camera", "bay1"),
    ):
        result = _replay(*argv, out=tmp_path / "out.json")
        starts = [a for a in result["alerts"] if a["type"] == "bed_exit" and a["phase"] == "start"]
        assert len(starts) == 1 and starts[0]["zone"] == "bed 1"
        assert starts[0]["t_observed"] <= standing - 3.0  # the warning comes before the patient stands
        floors = [w["floor"] for w in result["windows"]]
        assert all(f is not None for f in floors)
        assert any(f["zone"] == "bed 1" for f in floors)
        assert any(f["speed_mps"] is not None and f["floor_xy"] is not None for f in floors)


def test_replay_without_calibration_has_no_metres_or_zone_alerts(tmp_path: Path) -> None:
    recording, config, _ = _scene(tmp_path)
    for argv in ((str(recording),), (str(recording), "--config", str(config), "--camera", "bay2")):
        result = _replay(*argv, out=tmp_path / "out.json")
        assert not [a for a in result["alerts"] if a["type"] == "bed_exit"]
        assert all(w["floor"] is None for w in result["windows"])


def test_replay_refuses_an_unknown_camera(tmp_path: Path) -> None:
    recording, config, _ = _scene(tmp_path)
    assert main(["replay", str(recording), "--config", str(config), "--camera", "bay9"]) == EX_CONFIG
    assert main(["replay", str(recording), "--camera", "bay1"]) == EX_CONFIG
