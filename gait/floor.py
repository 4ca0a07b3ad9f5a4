"""Floor calibration of one fixed camera: image pixels <-> floor metres, and where a person's feet stand.

A camera sees the floor through a plane-to-plane projective map (a homography): every floor point (X, Y) in
metres has one image point (x, y) and back, as long as it lies in front of the camera, i.e. below the horizon.
Two ways to get it:
- from points: an admin marks >= 4 image points whose floor coordinates were measured (tape measure, floor
  tiles). The map is the direct linear transform (DLT, Hartley normalisation) refined by least squares on the
  floor-side residual; with 5 or more points the residual shows a mis-typed point. 4 points fit exactly, so
  they cannot reveal a mistake: use 6-9 spread over the walking area.
- from the camera: height above the floor, downward tilt and field of view (a pinhole model with the principal
  point at the image centre and no lens distortion). The floor frame then has its origin under the camera, Y
  forward along the viewing direction and X to the right. Errors of a few degrees of tilt scale distances by
  a few per cent far away: points are better when the floor can be measured.

Feet are the only body points that touch the floor: heels and toes (``Landmark.*_HEEL``, ``*_FOOT_INDEX``) of a
foot in stance lie on it; an ankle is ~4 % of the body height above it, so it is only a fallback (a raised
point projects onto the floor further from the camera, by its height x its distance / the camera height).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import least_squares

from gaitwatch.pose.keypoints import Landmark

# A homography is defined only up to scale; calibration points that cannot pin it down (too few, collinear,
# coincident) would still give *a* matrix, just a meaningless one. These tolerances reject them.
_MIN_POINTS = 4
_COINCIDENT_PX = 2.0  # two image points closer than this are one click twice
_COINCIDENT_M = 0.01  # two floor points closer than this are one measurement twice
_COLLINEAR = 0.02  # smallest / largest spread of a point set: below it the points lie on one line
DEFAULT_MAX_ERROR_M = 0.10  # a calibration point this far off the fit of the others is a mistake, not noise


class CalibrationError(ValueError):
    """A floor calibration that is missing, degenerate or inconsistent; the message names the problem."""


@dataclass(frozen=True, slots=True)
class FloorCalibration:
    """One camera's map between image pixels and floor metres.

    ``image_to_floor`` (3, 3) maps homogeneous image points to homogeneous floor points, scaled so that floor
    points in front of the camera come out with a positive third coordinate (points above the horizon come
    out negative: they are not on the floor). ``rms_error_m`` / ``max_error_m``: floor-side residuals of the
    calibration points (0 for a camera model or exactly 4 points); ``rms_error_px``: the same residuals
    measured in the image. ``points``: how many points made it (0 for a camera model).
    """

    image_to_floor: NDArray[np.float64]
    rms_error_m: float = 0.0
    max_error_m: float = 0.0
    rms_error_px: float = 0.0
    points: int = 0

    def __post_init__(self) -> None:
        h = self.image_to_floor
        if h.shape != (3, 3) or not np.all(np.isfinite(h)):
            raise CalibrationError(f"image_to_floor must be a finite 3x3 matrix; got shape {h.shape}")
        if abs(float(np.linalg.det(h))) < 1e-12 * float(np.abs(h).max()) ** 3:
            raise CalibrationError("image_to_floor is singular: it maps the image onto a line")

    @property
    def floor_to_image(self) -> NDArray[np.float64]:
        return np.asarray(np.linalg.inv(self.image_to_floor), dtype=np.float64)

    def to_floor(self, image_xy: ArrayLike) -> NDArray[np.float64]:
        """Floor (X, Y) metres of image points ``(..., 2)``; NaN for points on or above the horizon (and for
        NaN input)."""
        return _apply(self.image_to_floor, image_xy, positive=True)

    def to_image(self, floor_xy: ArrayLike) -> NDArray[np.float64]:
        """Image (x, y) pixels of floor points ``(..., 2)``; NaN for points behind the camera."""
        # Normalised so that floor points in front of the camera have w > 0 both ways (see the class docstring).
        return _apply(self.floor_to_image, floor_xy, positive=True)


def _apply(h: NDArray[np.float64], xy: ArrayLike, *, positive: bool) -> NDArray[np.float64]:
    """``h`` applied to points ``(..., 2)``; NaN where the homogeneous scale has the wrong sign (the point is
    on the other side of the horizon) or is ~0 (on it)."""
    p = np.asarray(xy, dtype=np.float64)
    if p.shape[-1] != 2:
        raise ValueError(f"points must have shape (..., 2); got {p.shape}")
    hom = p @ h[:, :2].T + h[:, 2]
    w = hom[..., 2] if positive else -hom[..., 2]
    # For the image -> floor direction w is 1 / depth of the floor point (up to the matrix's scale): at w -> 0
    # the point recedes to the horizon, where a pixel spans metres of floor. Nothing there is measurable.
    scale = float(np.abs(h).max())
    ok = w > 1e-9 * scale
    out = hom[..., :2] / np.where(ok, hom[..., 2], 1.0)[..., None]
    out[~ok] = np.nan
    return out


def _normaliser(p: NDArray[np.float64]) -> NDArray[np.float64]:
    """Hartley normalisation: move the centroid to 0 and scale the mean distance to sqrt(2), so the DLT's
    equations are well conditioned whatever the units (pixels in the hundreds, metres in the units)."""
    c = p.mean(axis=0)
    d = float(np.mean(np.linalg.norm(p - c, axis=1)))
    s = np.sqrt(2.0) / d
    return np.array([[s, 0.0, -s * c[0]], [0.0, s, -s * c[1]], [0.0, 0.0, 1.0]])


def _spread_ratio(p: NDArray[np.float64]) -> float:
    """Smallest over largest singular value of the centred points: 0 when they all lie on one line."""
    sv = np.linalg.svd(p - p.mean(axis=0), compute_uv=False)
    return float(sv[-1] / sv[0]) if sv[0] > 0 else 0.0


def _check_points(name: str, p: NDArray[np.float64], tol: float, unit: str) -> None:
    d = np.linalg.norm(p[:, None, :] - p[None, :, :], axis=-1)
    i, j = np.nonzero(np.triu(d < tol, k=1))
    if i.size:
        raise CalibrationError(
            f"{name} points {int(i[0]) + 1} and {int(j[0]) + 1} coincide ({d[i[0], j[0]]:.3g} {unit} apart): "
            "each calibration point must be a different place"
        )
    if _spread_ratio(p) < _COLLINEAR:
        raise CalibrationError(
            f"the {name} points lie on one line: a floor calibration needs points spread over an area "
            "(no line of points fixes the floor's depth)"
        )
    # A homography needs 4 points of which no 3 are collinear: with all points but one on a line, any map that
    # keeps that line and the odd point fits them (the floor's depth off the line is free), and pixel rounding
    # hides it from the DLT's rank. Lines through every pair of points, tolerance as above.
    n = p.shape[0]
    tol = _COLLINEAR * float(np.linalg.svd(p - p.mean(axis=0), compute_uv=False)[0]) / np.sqrt(n)
    for a in range(n):
        for b in range(a + 1, n):
            d = p[b] - p[a]
            length = float(np.hypot(d[0], d[1]))
            off = np.abs(d[0] * (p[:, 1] - p[a, 1]) - d[1] * (p[:, 0] - p[a, 0])) / length
            on = np.flatnonzero(off <= tol)
            if on.shape[0] >= n - 1:
                listed = ", ".join(str(int(k) + 1) for k in on)
                raise CalibrationError(
                    f"{name} points {listed} lie on one line: all but one point on a line leave the floor's depth "
                    "undetermined; add points off that line (at least 4, no three on a line)"
                )


def _dlt(img: NDArray[np.float64], flo: NDArray[np.float64]) -> NDArray[np.float64]:
    """Image -> floor homography minimising the algebraic error on normalised coordinates."""
    ti, tf = _normaliser(img), _normaliser(flo)
    a = np.c_[img, np.ones(len(img))] @ ti.T
    b = np.c_[flo, np.ones(len(flo))] @ tf.T
    rows = []
    for (x, y, _), (u, v, _) in zip(a, b, strict=True):
        rows.append([-x, -y, -1.0, 0.0, 0.0, 0.0, u * x, u * y, u])
        rows.append([0.0, 0.0, 0.0, -x, -y, -1.0, v * x, v * y, v])
    _, sv, vt = np.linalg.svd(np.asarray(rows))
    # A unique homography leaves exactly one null direction; a second (near-)zero singular value means the
    # points allow a family of maps: a degenerate configuration that the checks above did not name.
    if sv[-2] < 1e-6 * sv[0]:
        raise CalibrationError("the calibration points do not determine the floor (degenerate configuration)")
    hn = vt[-1].reshape(3, 3)
    h: NDArray[np.float64] = np.linalg.inv(tf) @ hn @ ti
    return h / float(np.abs(h).max())


def _refine(h0: NDArray[np.float64], img: NDArray[np.float64], flo: NDArray[np.float64]) -> NDArray[np.float64]:
    """Least-squares refinement of the floor-side residual in metres (the DLT's algebraic error weighs far
    points differently from near ones). Only with more than 4 points; 4 are fitted exactly by the DLT."""
    if img.shape[0] <= _MIN_POINTS:
        return h0
    # A homography has 8 degrees of freedom: hold its largest element fixed (never one that may be ~0).
    fixed = int(np.argmax(np.abs(h0)))
    free = np.arange(9) != fixed

    def matrix(x: NDArray[np.float64]) -> NDArray[np.float64]:
        flat = h0.ravel().copy()
        flat[free] = x
        return flat.reshape(3, 3)

    def residual(x: NDArray[np.float64]) -> NDArray[np.float64]:
        hom = np.c_[img, np.ones(len(img))] @ matrix(x).T
        r: NDArray[np.float64] = (hom[:, :2] / hom[:, 2:3] - flo).ravel()
        return r

    return matrix(least_squares(residual, h0.ravel()[free], method="lm").x)


def calibrate_from_points(
    image_xy: ArrayLike, floor_xy: ArrayLike, *, max_error_m: float = DEFAULT_MAX_ERROR_M
) -> FloorCalibration:
    """A floor calibration from image points (pixels) and their measured floor coordinates (metres).

    Raises CalibrationError naming the problem: fewer than 4 points, non-finite values, coincident or collinear
    points (in the image or on the floor), points on both sides of the horizon, or a point further than
    ``max_error_m`` from the fit of all points (a mis-typed coordinate: the error names the worst point).
    """
    img = np.asarray(image_xy, dtype=np.float64)
    flo = np.asarray(floor_xy, dtype=np.float64)
    for name, p in (("image", img), ("floor", flo)):
        if p.ndim != 2 or p.shape[1] != 2:
            raise CalibrationError(f"{name} points must be pairs (x, y); got an array of shape {p.shape}")
    if img.shape[0] != flo.shape[0]:
        raise CalibrationError(f"{img.shape[0]} image points but {flo.shape[0]} floor points: they must pair up")
    if img.shape[0] < _MIN_POINTS:
        raise CalibrationError(
            f"a floor calibration needs at least {_MIN_POINTS} points (6-9 spread over the floor are better); "
            f"got {img.shape[0]}"
        )
    if not (np.all(np.isfinite(img)) and np.all(np.isfinite(flo))):
        raise CalibrationError("calibration points must be finite numbers")
    _check_points("image", img, _COINCIDENT_PX, "px")
    _check_points("floor", flo, _COINCIDENT_M, "m")
    h = _refine(_dlt(img, flo), img, flo)
    hom = np.c_[img, np.ones(len(img))] @ h.T
    w = hom[:, 2]
    # Every calibration point is on the floor in front of the camera, so all share one sign of w; mixed signs
    # mean no camera can see them all on the floor (typically a point marked above the horizon, or mixed up).
    if not (np.all(w > 0) or np.all(w < 0)):
        raise CalibrationError(
            "the calibration points cannot all lie on the floor in front of the camera (the fit puts some "
            "beyond the horizon): check for swapped or mis-typed points"
        )
    if w[0] < 0:
        h = -h
    cal = FloorCalibration(h / float(np.abs(h).max()))
    err = np.linalg.norm(cal.to_floor(img) - flo, axis=1)
    err_px = np.linalg.norm(cal.to_image(flo) - img, axis=1)
    worst = int(np.argmax(err))
    if not np.all(np.isfinite(err)) or err[worst] > max_error_m:
        raise CalibrationError(
            f"the calibration points are inconsistent: point {worst + 1} is {err[worst]:.2f} m off the floor "
            f"map fitted to all {len(img)} points (limit {max_error_m:.2f} m); check its image and floor "
            "coordinates"
        )
    return FloorCalibration(
        cal.image_to_floor,
        rms_error_m=float(np.sqrt(np.mean(err**2))),
        max_error_m=float(err[worst]),
        rms_error_px=float(np.sqrt(np.mean(err_px**2))),
        points=int(img.shape[0]),
    )


@dataclass(frozen=True, slots=True)
class PinholeCamera:
    """A distortion-free pinhole camera in a scene whose floor is the plane z = 0 (metres, z up).

    ``k`` (3, 3) intrinsics; ``rotation`` (3, 3) world-to-camera, rows = image right, image down, optical
    axis; ``centre`` (3,) the camera's position.
    """

    k: NDArray[np.float64]
    rotation: NDArray[np.float64]
    centre: NDArray[np.float64]

    @classmethod
    def looking(
        cls,
        centre: ArrayLike,
        look_deg: float,
        tilt_deg: float,
        focal_px: float,
        size_px: tuple[int, int],
        roll_deg: float = 0.0,
    ) -> PinholeCamera:
        """A camera at ``centre`` looking horizontally at ``look_deg`` (from the +x axis towards +y), tilted
        down by ``tilt_deg`` and rolled by ``roll_deg`` about its optical axis; principal point at the centre
        of an image of ``size_px`` (width, height)."""
        look_r = np.deg2rad(look_deg)
        look = np.array([np.cos(look_r), np.sin(look_r), 0.0])
        tilt = np.deg2rad(tilt_deg)
        fwd = np.cos(tilt) * look + np.array([0.0, 0.0, -np.sin(tilt)])
        right = np.cross(fwd, np.array([0.0, 0.0, 1.0]))
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        roll = np.deg2rad(roll_deg)
        right, down = np.cos(roll) * right + np.sin(roll) * down, -np.sin(roll) * right + np.cos(roll) * down
        w, h = size_px
        k = np.array([[focal_px, 0.0, w / 2.0], [0.0, focal_px, h / 2.0], [0.0, 0.0, 1.0]])
        return cls(k, np.stack([right, down, fwd]), np.asarray(centre, dtype=np.float64))

    def project(self, points: ArrayLike) -> NDArray[np.float64]:
        """Image (x, y) pixels of scene points ``(..., 3)``; NaN for points behind the camera."""
        p = (np.asarray(points, dtype=np.float64) - self.centre) @ self.rotation.T
        front = p[..., 2] > 1e-6
        uv = p @ self.k.T
        out: NDArray[np.float64] = uv[..., :2] / np.where(front, uv[..., 2], 1.0)[..., None]
        out[~front] = np.nan
        return out

    def plane_to_image(self, height_m: float) -> NDArray[np.float64]:
        """(3, 3) homography from points (X, Y) of the horizontal plane ``height_m`` above the floor (a mattress,
        a seat) to image pixels."""
        m: NDArray[np.float64] = (
            self.k @ self.rotation @ np.c_[np.eye(3)[:, :2], np.array([0.0, 0.0, height_m]) - self.centre]
        )
        return m

    def floor_calibration(self) -> FloorCalibration:
        """The exact image <-> floor map of this camera (floor point (X, Y, 0) -> image: K R [e1 e2 -C])."""
        m = self.k @ self.rotation @ np.c_[np.eye(3)[:, :2], -self.centre]
        h: NDArray[np.float64] = np.linalg.inv(m)
        # Positive w for floor points in front: image (x, y, 1) = (K R (X - C)) / depth, so H (x, y, 1) is the
        # floor point divided by its (positive) depth.
        return FloorCalibration(h / float(np.abs(h).max()))


def calibrate_from_camera(
    *,
    height_m: float,
    tilt_deg: float,
    fov_deg: float,
    image_size: tuple[int, int],
    roll_deg: float = 0.0,
    fov_axis: str = "horizontal",
) -> FloorCalibration:
    """A floor calibration from the camera's mounting: ``height_m`` of the lens above the floor, ``tilt_deg``
    downwards from the horizontal (0 = level, 90 = straight down), ``fov_deg`` the field of view across the
    image's width (``fov_axis="horizontal"``) or height (``"vertical"``), ``image_size`` (width, height) px.

    Floor frame: origin under the camera, Y forward along the viewing direction, X to the right. Raises
    CalibrationError naming the problem: a height that is not above the floor, a field of view outside
    (0, 180), a tilt beyond straight down, or one that keeps the whole image above the horizon.
    """
    w, h = image_size
    if not (w > 0 and h > 0):
        raise CalibrationError(f"image size must be positive pixels; got {w}x{h}")
    if not (np.isfinite(height_m) and height_m > 0):
        raise CalibrationError(f"camera height must be above the floor (> 0 m); got {height_m}")
    if not (np.isfinite(fov_deg) and 0 < fov_deg < 180):
        raise CalibrationError(f"field of view must be between 0 and 180 degrees; got {fov_deg}")
    if fov_axis not in ("horizontal", "vertical"):
        raise CalibrationError(f"fov_axis must be 'horizontal' or 'vertical'; got {fov_axis!r}")
    if not (np.isfinite(tilt_deg) and -90 < tilt_deg <= 90):
        raise CalibrationError(
            f"tilt is measured downwards from the horizontal, up to 90 (straight down); got {tilt_deg}"
        )
    span = w if fov_axis == "horizontal" else h
    focal = span / 2.0 / np.tan(np.deg2rad(fov_deg) / 2.0)
    vfov_half = float(np.degrees(np.arctan(h / 2.0 / focal)))
    # The image's bottom edge looks vfov/2 below the optical axis: if even that ray points at or above the
    # horizon, no pixel sees the floor. A tenth of the half-angle of margin keeps some usable floor in view.
    if tilt_deg + 0.9 * vfov_half <= 0:
        raise CalibrationError(
            f"a camera tilted {tilt_deg:g} deg with a vertical field of view of {2 * vfov_half:.0f} deg never "
            "sees the floor: its lowest image row looks at or above the horizon"
        )
    cam = PinholeCamera.looking((0.0, 0.0, height_m), 90.0, tilt_deg, float(focal), (w, h), roll_deg)
    return cam.floor_calibration()


def recover_camera(calibration: FloorCalibration, image_size: tuple[int, int]) -> PinholeCamera | None:
    """The camera behind a floor map, assuming square pixels and the principal point at the image centre
    (true for ward IP cameras without a zoom offset): focal length, rotation and position in the floor frame.

    Needed for what is not on the floor: a bed's mattress or a chair's seat (``plane_to_image``). Zhang's
    constraints on the floor's two axes (orthogonal, equally long after removing K) fix the focal length; they
    are ill-conditioned for a camera looking straight down or with no perspective, and then None is returned
    (nothing above the floor can be placed).
    """
    w, h = image_size
    shift = np.array([[1.0, 0.0, -w / 2.0], [0.0, 1.0, -h / 2.0], [0.0, 0.0, 1.0]])
    m = shift @ calibration.floor_to_image
    m = m / float(np.linalg.norm(m[:, 0]))
    (a1, a2, _), (b1, b2, _), (c1, c2, _) = m
    # m1 . m2 = 0 and |m1| = |m2| after dividing the first two rows by f: two linear equations in 1 / f^2.
    lhs = np.array([a1 * a2 + b1 * b2, a1 * a1 + b1 * b1 - a2 * a2 - b2 * b2])
    rhs = -np.array([c1 * c2, c1 * c1 - c2 * c2])
    norm = float(lhs @ lhs)
    if norm < 1e-18:
        return None
    inv_f2 = float(lhs @ rhs) / norm  # least squares for 1 / f^2 in lhs * x = rhs
    if not np.isfinite(inv_f2) or inv_f2 <= 0:
        return None
    f = float(1.0 / np.sqrt(inv_f2))
    k = np.array([[f, 0.0, w / 2.0], [0.0, f, h / 2.0], [0.0, 0.0, 1.0]])
    rt = np.linalg.inv(k) @ calibration.floor_to_image
    lam = 2.0 / (np.linalg.norm(rt[:, 0]) + np.linalg.norm(rt[:, 1]))
    rt = rt * lam
    if rt[2, 2] < 0:  # the floor's origin must be in front of the camera (positive depth)
        rt = -rt
    r1, r2, t = rt[:, 0], rt[:, 1], rt[:, 2]
    r3 = np.cross(r1, r2)
    rot = np.stack([r1, r2, r3], axis=1)
    u, _, vt = np.linalg.svd(rot)  # nearest rotation: noise leaves r1, r2 not quite orthonormal
    rot = u @ vt
    centre = -rot.T @ t
    if centre[2] <= 0:
        # The floor frame is mirrored (X and Y entered left-handed): the camera came out below the floor. The
        # mirror image of the scene is the same camera with z pointing down, so flip the third axis back.
        rot = rot @ np.diag([1.0, 1.0, -1.0])
        centre = -rot.T @ t
        if centre[2] <= 0:
            return None
    return PinholeCamera(k, rot, np.asarray(centre, dtype=np.float64))


# Which landmarks stand for each foot on the floor: the sole (heel and toe) first, the ankle as a fallback.
FOOT_LANDMARKS: dict[str, tuple[Landmark, Landmark, Landmark]] = {
    "left": (Landmark.LEFT_HEEL, Landmark.LEFT_FOOT_INDEX, Landmark.LEFT_ANKLE),
    "right": (Landmark.RIGHT_HEEL, Landmark.RIGHT_FOOT_INDEX, Landmark.RIGHT_ANKLE),
}


def foot_floor_points(
    calibration: FloorCalibration, keypoints: ArrayLike, min_visibility: float = 0.5
) -> NDArray[np.float64]:
    """Floor (X, Y) of each foot, ``(M, 2, 2)`` [sample, left/right, xy] from keypoints ``(M, 33, 3)`` (image
    px + visibility); NaN where the foot is not seen.

    A foot is the mean of its heel and toe mapped to the floor (each mapped separately: the image midpoint of
    two floor points is not the floor midpoint under perspective); with only one of them seen, that one; with
    neither, the ankle (4 % of body height above the floor, so a little further from the camera than the foot).
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1] <= max(max(v) for v in FOOT_LANDMARKS.values()) or kp.shape[2] != 3:
        raise ValueError(f"keypoints must have shape (M, 33, 3); got {kp.shape}")
    out = np.full((kp.shape[0], 2, 2), np.nan)
    for side, (heel, toe, ankle) in enumerate(FOOT_LANDMARKS.values()):
        sole = []
        for lm in (heel, toe):
            xy = calibration.to_floor(kp[:, lm, :2])
            xy[kp[:, lm, 2] < min_visibility] = np.nan
            sole.append(xy)
        stacked = np.stack(sole)
        n = np.sum(np.isfinite(stacked[..., 0]), axis=0)
        mean = np.nansum(np.nan_to_num(stacked, nan=0.0), axis=0) / np.maximum(n, 1)[:, None]
        ank = calibration.to_floor(kp[:, ankle, :2])
        ank[kp[:, ankle, 2] < min_visibility] = np.nan
        out[:, side] = np.where((n > 0)[:, None], mean, ank)
    return out
