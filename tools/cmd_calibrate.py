"""``gaitwatch calibrate``: a camera's floor calibration, made and checked on the ward PC (pixels never leave it).

Usage:
  gaitwatch calibrate --config CFG --camera ID --snapshot frame.png
      grab one frame from the camera (as the daemon sees it: same source, same downscaling) and write it with a
      pixel grid, so the image x, y of floor marks can be read off;
  gaitwatch calibrate --config CFG --camera ID --points points.csv --preview preview.png [--image frame.png]
      fit the floor map to measured points (CSV rows ``x_px, y_px, X_m, Y_m``; ``#`` comments), print the
      reprojection error of every point, the config section to paste, and write the frame with the floor's 1 m
      grid, the points (green: clicked, red: where the fit puts them) and the camera's zones drawn on it;
  gaitwatch calibrate ... --height 2.4 --tilt 25 --fov 90 [--fov-axis vertical] --preview preview.png
      the same from the camera's mounting (height m, downward tilt deg, field of view deg).
Without ``--points``/``--height`` a camera's calibration in the config is previewed. ``--image`` reuses a saved
snapshot instead of grabbing a frame.

Exit codes: 0 done; 1 the camera gave no frame or a file could not be read or written; 2 bad usage; 78 an
invalid config or calibration (the message names the problem)."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from gaitwatch.daemon.settings import EX_CONFIG, CameraSettings, ConfigError, load_settings
from gaitwatch.gait.floor import CalibrationError, FloorCalibration, calibrate_from_camera, calibrate_from_points
from gaitwatch.gait.zones import ZoneError, ZoneMap

_GRID_PX = 50  # snapshot grid spacing; every other line labelled
_GREEN, _RED, _CYAN, _YELLOW, _WHITE = (60, 200, 60), (40, 40, 230), (220, 200, 40), (40, 220, 240), (255, 255, 255)
_ZONE_COLOURS = {"bed": (200, 120, 40), "chair": (40, 160, 200), "door": (160, 60, 200), "bathroom": (200, 60, 160)}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``calibrate`` subcommand to the ``gaitwatch`` command line."""
    p = subparsers.add_parser(
        "calibrate",
        help="floor calibration of a camera: snapshot with a pixel grid, fit, reprojection error, preview",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, required=True, help="the daemon's TOML config")
    p.add_argument("--camera", required=True, help="camera id in the config")
    p.add_argument("--snapshot", type=Path, help="write the frame with a pixel grid here (PNG)")
    p.add_argument("--image", type=Path, help="use this saved frame instead of grabbing one from the camera")
    p.add_argument("--points", type=Path, help="CSV of x_px, y_px, X_m, Y_m rows (>= 4, better 6-9)")
    p.add_argument("--height", type=float, help="camera height above the floor (m)")
    p.add_argument("--tilt", type=float, help="downward tilt from the horizontal (deg)")
    p.add_argument("--fov", type=float, help="field of view (deg)")
    p.add_argument("--fov-axis", choices=("horizontal", "vertical"), default="horizontal")
    p.add_argument("--preview", type=Path, help="write the frame with the floor grid, points and zones (PNG)")
    p.set_defaults(func=run)


def grab_frame(camera: CameraSettings, timeout_s: float | None = None) -> NDArray[np.uint8] | None:
    """One frame from ``camera`` through the daemon's own reader (same decoding and downscaling), or None."""
    from gaitwatch.daemon.sources import OpenCvCamera

    source = OpenCvCamera(camera)
    source.start()
    try:
        frame = source.get(timeout_s if timeout_s is not None else camera.open_timeout_s + camera.read_timeout_s)
    finally:
        source.stop()
    return frame.image if frame is not None else None


def grid_image(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The frame with a pixel grid every 50 px, labelled every 100 px, for reading off floor marks."""
    out = image.copy()
    h, w = out.shape[:2]
    for x in range(0, w, _GRID_PX):
        cv2.line(out, (x, 0), (x, h - 1), _YELLOW if x % 100 == 0 else _WHITE, 1)
        if x % 100 == 0:
            cv2.putText(out, str(x), (x + 2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, _YELLOW, 1, cv2.LINE_AA)
    for y in range(0, h, _GRID_PX):
        cv2.line(out, (0, y), (w - 1, y), _YELLOW if y % 100 == 0 else _WHITE, 1)
        if y % 100 == 0 and y > 0:
            cv2.putText(out, str(y), (2, y - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, _YELLOW, 1, cv2.LINE_AA)
    return out


def read_points(path: Path) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Image and floor points from a CSV of ``x_px, y_px, X_m, Y_m`` rows (blank lines and ``#`` comments
    skipped). Raises CalibrationError naming a bad row."""
    rows: list[list[float]] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for n, row in enumerate(csv.reader(handle), start=1):
            cells = [c.strip() for c in row]
            if not cells or not any(cells) or cells[0].startswith("#"):
                continue
            try:
                values = [float(c) for c in cells]
            except ValueError:
                raise CalibrationError(f"{path} line {n}: expected 4 numbers x_px, y_px, X_m, Y_m; got {row}") from None
            if len(values) != 4:
                raise CalibrationError(f"{path} line {n}: expected 4 numbers x_px, y_px, X_m, Y_m; got {len(values)}")
            rows.append(values)
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    return arr[:, :2], arr[:, 2:]


def draw_preview(
    image: NDArray[np.uint8],
    calibration: FloorCalibration | None,
    zones: ZoneMap | None,
    points: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None,
) -> NDArray[np.uint8]:
    """The frame with the floor's 1 m grid (labelled in metres), the calibration points (green: where they were
    clicked, red: where the fit puts their floor coordinates) and the zones' outlines with their names."""
    out = image.copy()
    h, w = out.shape[:2]
    if calibration is not None:
        # The floor area the camera sees: image samples below the horizon, mapped to the floor, robust extent.
        xs, ys = np.meshgrid(np.linspace(0, w - 1, 33), np.linspace(0, h - 1, 19))
        seen = calibration.to_floor(np.stack([xs.ravel(), ys.ravel()], axis=1))
        seen = seen[np.all(np.isfinite(seen), axis=1)]
        # Towards the horizon a pixel spans metres: keep the floor within 15 m of what the bottom row sees.
        near = calibration.to_floor(np.array([w / 2.0, h - 1.0]))
        if np.all(np.isfinite(near)):
            seen = seen[np.linalg.norm(seen - near, axis=1) <= 15.0]
        if seen.shape[0]:
            lo = np.floor(seen.min(axis=0)).astype(int)
            hi = np.ceil(seen.max(axis=0)).astype(int)
            for axis in (0, 1):
                for k in range(int(lo[axis]), int(hi[axis]) + 1):
                    line = np.zeros((200, 2))
                    line[:, axis] = k
                    line[:, 1 - axis] = np.linspace(lo[1 - axis], hi[1 - axis], 200)
                    _polyline(out, calibration.to_image(line), _CYAN, closed=False)
            step = 1 if int(np.max(hi - lo)) <= 10 else 2  # label every metre, or every other on a big floor
            for gx in range(int(lo[0]), int(hi[0]) + 1, step):
                for gy in range(int(lo[1]), int(hi[1]) + 1, step):
                    p = calibration.to_image(np.array([float(gx), float(gy)]))
                    if np.all(np.isfinite(p)) and 0 <= p[0] < w and 0 <= p[1] < h:
                        cv2.putText(
                            out,
                            f"{gx},{gy}",
                            (int(p[0]) + 3, int(p[1]) - 3),
                            cv2.FONT_HERSHEY_SIMPLEX,
                            0.35,
                            _CYAN,
                            1,
                            cv2.LINE_AA,
                        )
    if points is not None and calibration is not None:
        img, floor = points
        fitted = calibration.to_image(floor)
        for i, (a, b) in enumerate(zip(img, fitted, strict=True)):
            cv2.circle(out, (round(float(a[0])), round(float(a[1]))), 6, _GREEN, 2, cv2.LINE_AA)
            if np.all(np.isfinite(b)):
                cv2.drawMarker(out, (round(float(b[0])), round(float(b[1]))), _RED, cv2.MARKER_CROSS, 10, 2)
            cv2.putText(
                out, str(i + 1), (int(a[0]) + 8, int(a[1]) + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.5, _GREEN, 1, cv2.LINE_AA
            )
    if zones is not None:
        for z, outline in zip(zones.zones, zones.outlines, strict=True):
            colour = _ZONE_COLOURS.get(str(z.kind), _GREEN)
            _polyline(out, outline, colour, closed=True, thickness=2)
            c = outline.mean(axis=0)
            cv2.putText(
                out,
                f"{z.name} ({z.kind})",
                (int(c[0]) - 30, int(c[1])),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.5,
                colour,
                1,
                cv2.LINE_AA,
            )
    return out


def _polyline(
    out: NDArray[np.uint8], pts: NDArray[np.float64], colour: tuple[int, int, int], *, closed: bool, thickness: int = 1
) -> None:
    """Draw the finite runs of ``pts`` (points beyond the horizon are NaN and break the line)."""
    ok = np.all(np.isfinite(pts), axis=1) & np.all(np.abs(pts) < 1e5, axis=1)
    run: list[list[int]] = []
    for p, good in zip(pts, ok, strict=True):
        if good:
            run.append([round(float(p[0])), round(float(p[1]))])
        elif run:
            cv2.polylines(out, [np.array(run, dtype=np.int32)], False, colour, thickness, cv2.LINE_AA)
            run = []
    if run:
        cv2.polylines(out, [np.array(run, dtype=np.int32)], closed and bool(np.all(ok)), colour, thickness, cv2.LINE_AA)


def config_snippet(
    camera_id: str,
    args: argparse.Namespace,
    size: tuple[int, int],
    points: tuple[NDArray[np.float64], NDArray[np.float64]] | None,
) -> str:
    """The ``[cameras.calibration]`` section to paste under the camera ``camera_id``."""
    lines = [f'# under the [[cameras]] entry with id = "{camera_id}"', "[cameras.calibration]"]
    lines.append(f"image_size_px = [{size[0]}, {size[1]}]")
    if points is not None:
        rows = ", ".join(f"[{a[0]:g}, {a[1]:g}, {b[0]:g}, {b[1]:g}]" for a, b in zip(*points, strict=True))
        lines.append(f"points = [{rows}]  # x_px, y_px, X_m, Y_m")
    else:
        lines += [f"height_m = {args.height:g}", f"tilt_deg = {args.tilt:g}", f"fov_deg = {args.fov:g}"]
        if args.fov_axis != "horizontal":
            lines.append(f'fov_axis = "{args.fov_axis}"')
    return "\n".join(lines) + "\n"


def _write(path: Path, image: NDArray[np.uint8]) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ok = bool(cv2.imwrite(str(path), image))
    except (OSError, cv2.error):
        ok = False
    if not ok:
        sys.stderr.write(f"gaitwatch calibrate: cannot write {path}\n")
    return ok


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"gaitwatch: {exc}\n")
        return EX_CONFIG
    camera = next((c for c in settings.cameras if c.id == args.camera), None)
    if camera is None:
        known = ", ".join(c.id for c in settings.cameras)
        sys.stderr.write(f"gaitwatch calibrate: no camera {args.camera!r} in {args.config} (cameras: {known})\n")
        return 2
    mounting = (args.height, args.tilt, args.fov)
    if any(v is not None for v in mounting) and not all(v is not None for v in mounting):
        sys.stderr.write("gaitwatch calibrate: a mounting calibration needs all of --height, --tilt and --fov\n")
        return 2
    if args.points is not None and args.height is not None:
        sys.stderr.write("gaitwatch calibrate: give either --points or --height/--tilt/--fov, not both\n")
        return 2
    if args.snapshot is None and args.preview is None:
        sys.stderr.write("gaitwatch calibrate: nothing to do: give --snapshot and/or --preview\n")
        return 2
    if args.image is not None:
        read = cv2.imread(str(args.image), cv2.IMREAD_COLOR)
        if read is None:
            sys.stderr.write(f"gaitwatch calibrate: cannot read image {args.image}\n")
            return 1
        image: NDArray[np.uint8] | None = np.asarray(read, dtype=np.uint8)
    else:
        image = grab_frame(camera)
    if image is None:
        sys.stderr.write(f"gaitwatch calibrate: camera {camera.id} gave no frame; is it reachable?\n")
        return 1
    size = (int(image.shape[1]), int(image.shape[0]))
    if args.snapshot is not None:
        if not _write(args.snapshot, grid_image(image)):
            return 1
        sys.stdout.write(f"snapshot {args.snapshot} ({size[0]}x{size[1]} px, grid every {_GRID_PX} px)\n")
    if args.preview is None:
        return 0
    points = None
    try:
        if args.points is not None:
            points = read_points(args.points)
            calibration: FloorCalibration | None = calibrate_from_points(*points)
        elif args.height is not None:
            calibration = calibrate_from_camera(
                height_m=args.height, tilt_deg=args.tilt, fov_deg=args.fov, image_size=size, fov_axis=args.fov_axis
            )
        else:
            calibration = camera.floor_calibration()
        zones = camera_zones(camera, calibration, size)
    except (CalibrationError, ZoneError) as exc:
        sys.stderr.write(f"gaitwatch calibrate: camera {camera.id}: {exc}\n")
        return EX_CONFIG
    except OSError as exc:
        sys.stderr.write(f"gaitwatch calibrate: cannot read {args.points}: {exc.strerror}\n")
        return 1
    if calibration is None and zones is None:
        sys.stderr.write(
            f"gaitwatch calibrate: camera {camera.id} has no calibration: give --points or --height/--tilt/--fov\n"
        )
        return 2
    if calibration is not None and points is not None:
        err_m = np.linalg.norm(calibration.to_floor(points[0]) - points[1], axis=1)
        err_px = np.linalg.norm(calibration.to_image(points[1]) - points[0], axis=1)
        sys.stdout.write(
            f"reprojection error over {calibration.points} points: rms {calibration.rms_error_px:.1f} px, "
            f"{calibration.rms_error_m * 100:.1f} cm on the floor (worst {calibration.max_error_m * 100:.1f} cm)\n"
        )
        if calibration.points == 4:
            sys.stdout.write("note: 4 points fit exactly, so their error cannot show a mistake; add 2-5 more\n")
        for i, (em, ep) in enumerate(zip(err_m, err_px, strict=True)):
            sys.stdout.write(f"  point {i + 1}: {em * 100:.1f} cm, {ep:.1f} px\n")
    if args.points is not None or args.height is not None:
        sys.stdout.write(config_snippet(camera.id, args, size, points))
    if not _write(args.preview, draw_preview(image, calibration, zones, points)):
        return 1
    sys.stdout.write(f"preview {args.preview}\n")
    return 0


def camera_zones(camera: CameraSettings, calibration: FloorCalibration | None, size: tuple[int, int]) -> ZoneMap | None:
    """The config's zones of ``camera`` placed in the image with ``calibration`` (the one being tried, which
    may differ from the config's)."""
    if not camera.zones:
        return None
    return ZoneMap.build(tuple(z.build(calibration is not None) for z in camera.zones), calibration, size)
