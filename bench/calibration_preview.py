"""The calibration helper's preview on a generated ward view of known geometry (the README's picture).

    .venv/bin/python bench/calibration_preview.py [--out bench/calibration_preview.png]

Renders a frame of the ward camera of gaitwatch.gait.offline.ward_scenes (floor tiles of 0.5 m, a bed and a
chair, a patient lying in the bed), writes it with the floor marks it sees (measured to +-2 cm) as a points
CSV and a config with that calibration and a bed and a chair zone (in metres), and runs ``gaitwatch calibrate``
on them: the reprojection error it prints and the preview it draws (1 m floor grid, marks, zones) are what an
admin sees. No camera and no real person.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from gaitwatch.gait.floor import PinholeCamera
from gaitwatch.gait.offline.ward_scenes import CHAIR_POLYGON, Bed, bed_exit_script, body, floor_marks, ward_camera
from gaitwatch.pose.keypoints import SKELETON
from gaitwatch.tools.cli import main as gaitwatch


def _box(
    img: NDArray[np.uint8], camera: PinholeCamera, poly: NDArray[np.float64], top: float, colour: tuple[int, int, int]
) -> None:
    """A box standing on the floor polygon ``poly`` up to ``top`` metres, its top face filled."""
    face = np.round(camera.project(np.c_[poly, np.full(len(poly), top)])).astype(np.int32)
    for a, b in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        side = np.array([[*a, 0.0], [*b, 0.0], [*b, top], [*a, top]])
        cv2.fillConvexPoly(img, np.round(camera.project(side)).astype(np.int32), tuple(int(c * 0.7) for c in colour))
    cv2.fillConvexPoly(img, face, colour)


def ward_frame(camera: PinholeCamera) -> NDArray[np.uint8]:
    w, h = int(2 * camera.k[0, 2]), int(2 * camera.k[1, 2])
    img = np.full((h, w, 3), (205, 210, 215), dtype=np.uint8)
    floor = np.array([[-3.0, 0.5], [5.0, 0.5], [5.0, 9.0], [-3.0, 9.0]])
    dense = np.concatenate([np.linspace(a, b, 40) for a, b in zip(floor, np.roll(floor, -1, axis=0), strict=True)])
    outline = camera.project(np.c_[dense, np.zeros(len(dense))])
    cv2.fillPoly(img, [np.round(outline[np.all(np.isfinite(outline), axis=1)]).astype(np.int32)], (170, 180, 185))
    for k in np.arange(-3.0, 5.01, 0.5):
        for a, b in (((k, 0.5), (k, 9.0)), ((-3.0, k + 4.0), (5.0, k + 4.0))):
            line = camera.project(np.c_[np.linspace(a[0], b[0], 60), np.linspace(a[1], b[1], 60), np.zeros(60)])
            ok = np.all(np.isfinite(line), axis=1)
            cv2.polylines(img, [np.round(line[ok]).astype(np.int32)], False, (150, 158, 162), 1, cv2.LINE_AA)
    bed = Bed()
    _box(img, camera, bed.polygon, bed.height, (235, 235, 240))
    _box(img, camera, CHAIR_POLYGON, 0.45, (90, 120, 160))
    patient = body(bed_exit_script(bed, np.random.default_rng(0), 1.7)[0][1], 1.7)
    uv = np.round(camera.project(patient)).astype(np.int32)
    for j0, j1 in SKELETON:
        cv2.line(img, tuple(uv[j0]), tuple(uv[j1]), (60, 60, 200), 3, cv2.LINE_AA)
    return img


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/calibration_preview.png"))
    args = parser.parse_args()
    camera = ward_camera()
    rng = np.random.default_rng(17)
    img, marks = floor_marks(camera)
    measured = marks + rng.uniform(-0.02, 0.02, marks.shape)
    with tempfile.TemporaryDirectory() as tmp:
        frame, points, config = Path(tmp) / "frame.png", Path(tmp) / "points.csv", Path(tmp) / "gaitwatch.toml"
        cv2.imwrite(str(frame), ward_frame(camera))
        points.write_text(
            "".join(f"{a[0]:g}, {a[1]:g}, {b[0]:.2f}, {b[1]:.2f}\n" for a, b in zip(img, measured, strict=True))
        )
        zones = "".join(
            f'[[cameras.zones]]\nname = "{name}"\nkind = "{kind}"\npolygon = {np.round(poly, 2).tolist()}\n'
            for name, kind, poly in (("bed 1", "bed", Bed().polygon), ("chair 1", "chair", CHAIR_POLYGON))
        )
        rows = ", ".join(f"[{a[0]:g}, {a[1]:g}, {b[0]:.2f}, {b[1]:.2f}]" for a, b in zip(img, measured, strict=True))
        calibration = f"[cameras.calibration]\nimage_size_px = [1280, 720]\npoints = [{rows}]\n"
        config.write_text(
            f'[service]\nstate_dir = "{tmp}"\n[[cameras]]\nid = "bay1"\nsource = "{frame}"\n{calibration}{zones}'
        )
        return gaitwatch(
            [
                "calibrate",
                "--config",
                str(config),
                "--camera",
                "bay1",
                "--image",
                str(frame),
                "--points",
                str(points),
                "--preview",
                str(args.out),
            ]
        )


if __name__ == "__main__":
    sys.exit(main())
