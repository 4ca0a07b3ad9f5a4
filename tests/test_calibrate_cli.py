"""``gaitwatch calibrate`` end to end on a generated ward view of known geometry: snapshot from the camera's
source, a points calibration whose printed config section passes check-config, previews, and bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from gaitwatch.daemon.settings import EX_CONFIG, load_settings
from gaitwatch.gait.floor import PinholeCamera
from gaitwatch.tools.cli import main

SIZE = (640, 360)
CAMERA = PinholeCamera.looking((0.0, 0.0, 2.5), 90.0, 28.0, 420.0, SIZE)
MARKS = np.array([[x, y] for x in (-1.0, 0.0, 1.0) for y in (3.0, 4.0, 5.0)])


def ward_frame() -> NDArray[np.uint8]:
    """A floor of 0.5 m tiles seen by CAMERA, walls grey above the horizon."""
    img = np.full((SIZE[1], SIZE[0], 3), 150, dtype=np.uint8)
    for k in np.arange(-4.0, 4.01, 0.5):
        for a, b in (((k, 1.5), (k, 12.0)), ((-4.0, k + 5.5), (4.0, k + 5.5))):
            line = CAMERA.project(np.c_[np.linspace(a[0], b[0], 50), np.linspace(a[1], b[1], 50), np.zeros(50)])
            ok = np.all(np.isfinite(line), axis=1)
            cv2.polylines(img, [np.round(line[ok]).astype(np.int32)], False, (90, 90, 90), 1)
    return img


def write_config(tmp_path: Path, extra: str = "") -> Path:
    video = tmp_path / "ward.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, SIZE)
    for _ in range(5):
        writer.write(ward_frame())
    writer.release()
    config = tmp_path / "gaitwatch.toml"
    config.write_text(
        f'[service]\nstate_dir = "{tmp_path / "state"}"\n\n[[cameras]]\nid = "bay1"\nsource = "{video}"\n'
        f'playback = "replay"\n{extra}',
        encoding="utf-8",
    )
    return config


def test_snapshot_points_preview_and_the_printed_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    snap = tmp_path / "snap.png"
    assert main(["calibrate", "--config", str(config), "--camera", "bay1", "--snapshot", str(snap)]) == 0
    shot = cv2.imread(str(snap))
    assert shot is not None and shot.shape == (SIZE[1], SIZE[0], 3)
    assert "grid every 50 px" in capsys.readouterr().out
    # Marks read off the snapshot to the pixel, measured on the floor to +-2 cm.
    rng = np.random.default_rng(0)
    img = np.round(CAMERA.project(np.c_[MARKS, np.zeros(len(MARKS))]))
    floor = MARKS + rng.uniform(-0.02, 0.02, MARKS.shape)
    points = tmp_path / "points.csv"
    points.write_text(
        "# x_px, y_px, X_m, Y_m\n"
        + "".join(f"{a[0]:g}, {a[1]:g}, {b[0]:.3f}, {b[1]:.3f}\n" for a, b in zip(img, floor, strict=True)),
        encoding="utf-8",
    )
    preview = tmp_path / "preview.png"
    args = ["calibrate", "--config", str(config), "--camera", "bay1", "--image", str(snap)]
    assert main([*args, "--points", str(points), "--preview", str(preview)]) == 0
    out = capsys.readouterr().out
    assert "reprojection error over 9 points" in out and "point 9:" in out
    assert cv2.imread(str(preview)) is not None
    # The printed section, pasted into the config, is a valid calibration there.
    section = out[out.index("[cameras.calibration]") : out.index("preview ")]
    calibrated = write_config(tmp_path, section)
    cal = load_settings(calibrated).cameras[0].floor_calibration()
    assert cal is not None and cal.points == 9
    np.testing.assert_allclose(cal.to_floor(img), MARKS, atol=0.05)
    # Previewing the config's own calibration (no --points) with its zones.
    zones = '\n[[cameras.zones]]\nname = "bed 1"\nkind = "bed"\npolygon = [[-0.5, 3], [0.5, 3], [0.5, 5], [-0.5, 5]]\n'
    calibrated.write_text(calibrated.read_text(encoding="utf-8") + zones, encoding="utf-8")
    assert (
        main(
            [
                "calibrate",
                "--config",
                str(calibrated),
                "--camera",
                "bay1",
                "--image",
                str(snap),
                "--preview",
                str(preview),
            ]
        )
        == 0
    )


def test_mounting_calibration_preview(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), ward_frame())
    preview = tmp_path / "preview.png"
    fov = float(np.degrees(2 * np.arctan(SIZE[0] / 2 / 420.0)))
    argv = ["calibrate", "--config", str(config), "--camera", "bay1", "--image", str(frame), "--preview", str(preview)]
    assert main([*argv, "--height", "2.5", "--tilt", "28", "--fov", f"{fov:.3f}"]) == 0
    out = capsys.readouterr().out
    assert "height_m = 2.5" in out and "image_size_px = [640, 360]" in out
    assert cv2.imread(str(preview)) is not None


def test_bad_input_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), ward_frame())
    preview = tmp_path / "p.png"
    points = tmp_path / "points.csv"
    points.write_text("100, 300, 0, 3\n200, 300, 1, 3\n300, 300, 2, 3\n400, 300, 3, 3\n", encoding="utf-8")
    base = ["calibrate", "--config", str(config), "--image", str(frame), "--preview", str(preview)]
    assert main([*base, "--camera", "bay1", "--points", str(points)]) == EX_CONFIG
    assert "lie on one line" in capsys.readouterr().err
    assert main([*base, "--camera", "bay1", "--height", "2.5", "--tilt", "-60", "--fov", "60"]) == EX_CONFIG
    assert "never sees the floor" in capsys.readouterr().err
    assert main([*base, "--camera", "bay1", "--height", "2.5"]) == 2
    assert main([*base, "--camera", "nope", "--height", "2.5", "--tilt", "20", "--fov", "60"]) == 2
    assert "no camera 'nope'" in capsys.readouterr().err
    points.write_text("100, 300, 0\n", encoding="utf-8")
    assert main([*base, "--camera", "bay1", "--points", str(points)]) == EX_CONFIG
    assert "line 1: expected 4 numbers" in capsys.readouterr().err


def test_check_config_refuses_bad_calibrations_and_zones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = {
        "[cameras.calibration]\nimage_size_px = [640, 360]\nheight_m = 2.5\ntilt_deg = 20\n": "missing fov_deg",
        "[cameras.calibration]\nimage_size_px = [640, 360]\n": "give either points",
        (
            "[cameras.calibration]\nimage_size_px = [640, 360]\n"
            "points = [[10, 300, 0, 0], [900, 300, 1, 0], [10, 200, 0, 1], [300, 200, 1, 1]]\n"
        ): "outside the 640x360 image",
        '[[cameras.zones]]\nname = "bed"\nkind = "bed"\npolygon = [[0, 3], [1, 3], [1, 5]]\n': "meant as floor metres",
    }
    for extra, message in cases.items():
        config = write_config(tmp_path, extra)
        assert main(["check-config", str(config)]) == EX_CONFIG, extra
        assert message in capsys.readouterr().err, extra
