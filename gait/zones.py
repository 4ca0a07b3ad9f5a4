"""Named areas of a ward room seen by one camera (beds, chairs, doors, the bathroom door, walkways), and which
one a person is in.

A zone is a polygon on the floor in metres (when the camera has a floor calibration) or in image pixels. All
tests happen in the image: a floor zone is mapped into it through the calibration, at its surface height for
beds and chairs (a person lying on a mattress 0.5 m above the floor is seen where the mattress is, not where
the bed's feet stand; 2.4 m above the floor at 3 m distance the two differ by most of a metre). The camera
behind a floor calibration is recovered for that (``gaitwatch.gait.floor.recover_camera``); when it cannot be,
the zone stays at floor height.

Which point of a person counts: the midpoint of the feet when upright (that is where someone stands), the
midpoint of the hips when sitting or lying (that is what rests on the seat or the mattress)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from gaitwatch.gait.floor import FloorCalibration, PinholeCamera, recover_camera
from gaitwatch.gait.types import ActivityState
from gaitwatch.pose.keypoints import Landmark


class ZoneKind(StrEnum):
    BED = "bed"
    CHAIR = "chair"
    DOOR = "door"
    BATHROOM = "bathroom"
    WALKWAY = "walkway"


# Typical surface heights: hospital beds at their low position 0.4-0.6 m (mattress top), chairs' seats ~0.45 m.
# Set a zone's own height for a bed kept high or a low bed.
SURFACE_HEIGHT_M: dict[ZoneKind, float] = {ZoneKind.BED: 0.5, ZoneKind.CHAIR: 0.45}
Sensitivity = Literal["low", "medium", "high"]
# Hips this close to a bed's or chair's outline, as a share of the square root of its image area, are at its
# edge: ~0.2 m on a 2.1 x 1.0 m bed, where a patient sitting on the edge has their hips; sitting up in the
# middle of the bed they are ~0.5 m from the long edges.
EDGE_FRACTION = 0.15
# The same in metres where the bed is in metres and the camera is known: hips this far inside the mattress's
# edge (sitting on it, thighs over it: 0.1-0.2 m; sitting up in the middle of a 0.9-1 m wide bed: ~0.45 m), or
# this far beyond it (perched on the frame), are at the edge. The hip joints of a seated person are ~0.1 m above
# the seat.
EDGE_INSIDE_M = 0.25
EDGE_OUTSIDE_M = 0.3
HIP_ABOVE_SEAT_M = 0.1


class ZoneError(ValueError):
    """A zone that cannot be used; the message names the zone and the problem."""


def _segments_cross(
    p: NDArray[np.float64], q: NDArray[np.float64], r: NDArray[np.float64], s: NDArray[np.float64]
) -> bool:
    def orient(a: NDArray[np.float64], b: NDArray[np.float64], c: NDArray[np.float64]) -> float:
        return float((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))

    return orient(p, q, r) * orient(p, q, s) < 0 and orient(r, s, p) * orient(r, s, q) < 0


def polygon_area(poly: NDArray[np.float64]) -> float:
    """Area of a simple polygon (shoelace formula), positive whatever the winding."""
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def point_in_polygon(poly: NDArray[np.float64], points: ArrayLike) -> NDArray[np.bool_]:
    """For points ``(..., 2)``, True inside ``poly`` (K, 2) (even-odd rule; NaN points are outside)."""
    p = np.asarray(points, dtype=np.float64)
    x, y = p[..., 0][..., None], p[..., 1][..., None]
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    straddles = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    crossings = np.count_nonzero(straddles & (x < x_cross), axis=-1)
    inside: NDArray[np.bool_] = (crossings % 2 == 1) & np.isfinite(p[..., 0]) & np.isfinite(p[..., 1])
    return inside


def edge_distance(poly: NDArray[np.float64], point: ArrayLike) -> float:
    """Distance from ``point`` (2,) to the nearest edge of ``poly`` (K, 2), in the polygon's units."""
    p = np.asarray(point, dtype=np.float64)
    a = poly
    b = np.roll(poly, -1, axis=0)
    ab = b - a
    u = np.clip(np.einsum("ij,ij->i", p - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12), 0.0, 1.0)
    nearest = a + u[:, None] * ab
    return float(np.min(np.linalg.norm(nearest - p, axis=1)))


@dataclass(frozen=True, slots=True)
class Zone:
    """One named area. ``polygon`` (K, 2) in ``units`` ("m": floor metres, X/Y of the floor calibration; "px":
    image pixels); ``surface_height_m`` the height of what a person rests on in it (None: by kind, see
    ``SURFACE_HEIGHT_M``; 0 for floor zones). ``exit_alerts``: raise bed_exit / chair_rise for this zone (a ward
    enables bed-exit alerts for fall-risk patients' beds only). ``sensitivity``: how early a bed exit is
    called: "high" as soon as the patient sits up, "medium" when they sit on the edge, "low" when they stand.
    Earlier means more warning before a fall and more false alarms from patients who sit up and lie back.
    """

    name: str
    kind: ZoneKind
    polygon: NDArray[np.float64]
    units: Literal["m", "px"] = "m"
    surface_height_m: float | None = None
    exit_alerts: bool = True
    sensitivity: Sensitivity = "medium"

    def __post_init__(self) -> None:
        where = f"zone {self.name!r}"
        if not self.name.strip():
            raise ZoneError("a zone needs a name")
        poly = self.polygon
        if poly.ndim != 2 or poly.shape[1] != 2 or poly.shape[0] < 3:
            raise ZoneError(f"{where}: polygon needs at least 3 (x, y) corners; got shape {poly.shape}")
        if not np.all(np.isfinite(poly)):
            raise ZoneError(f"{where}: polygon corners must be finite numbers")
        if self.units not in ("m", "px"):
            raise ZoneError(f"{where}: units must be 'm' or 'px'; got {self.units!r}")
        k = poly.shape[0]
        for i in range(k):
            for j in range(i + 2, k):
                if i == 0 and j == k - 1:
                    continue  # neighbouring edges through the closing corner
                if _segments_cross(poly[i], poly[(i + 1) % k], poly[j], poly[(j + 1) % k]):
                    raise ZoneError(f"{where}: polygon edges {i + 1} and {j + 1} cross; list the corners in order")
        span = float(np.max(np.ptp(poly, axis=0)))
        if polygon_area(poly) < 1e-3 * span * span or span == 0:
            raise ZoneError(f"{where}: polygon has no area (its corners lie on one line)")
        if self.surface_height_m is not None and not (0.0 <= self.surface_height_m <= 2.0):
            raise ZoneError(f"{where}: surface_height_m must be 0-2 m; got {self.surface_height_m}")

    @property
    def height_m(self) -> float:
        if self.surface_height_m is not None:
            return self.surface_height_m
        return SURFACE_HEIGHT_M.get(self.kind, 0.0)


@dataclass(frozen=True, slots=True)
class ZoneMap:
    """A camera's zones with their outlines in the image (``outlines[i]`` (K, 2) px for ``zones[i]``), ordered
    smallest first so a bed inside a walkway is found as the bed."""

    zones: tuple[Zone, ...]
    outlines: tuple[NDArray[np.float64], ...] = field(default=())
    # The camera recovered from the floor calibration (None without one, or when it cannot be recovered):
    # places image points on a bed's or chair's surface in metres.
    camera: PinholeCamera | None = None

    @classmethod
    def build(
        cls, zones: tuple[Zone, ...], calibration: FloorCalibration | None, image_size: tuple[int, int] | None
    ) -> ZoneMap:
        """Place ``zones`` in the image. Raises ZoneError for a metre zone on a camera without a floor
        calibration, or duplicate names."""
        names = [z.name for z in zones]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ZoneError(f"zone names must be unique per camera; repeated: {', '.join(sorted(dup))}")
        camera = recover_camera(calibration, image_size) if calibration is not None and image_size else None
        placed: list[tuple[float, Zone, NDArray[np.float64]]] = []
        for z in zones:
            if z.units == "px":
                outline = z.polygon
                # Metres read as pixels make a speck near the image corner: the commonest slip on a camera that
                # has no calibration yet (the default units then are pixels).
                if np.any(outline < 0) or polygon_area(outline) < 100.0:
                    raise ZoneError(
                        f"zone {z.name!r} in image pixels has negative corners or is smaller than 10x10 px: were "
                        "its corners meant as floor metres? That needs a floor calibration of the camera"
                    )
            elif calibration is None:
                raise ZoneError(
                    f"zone {z.name!r} is in floor metres but the camera has no floor calibration: add one, or "
                    'give the zone in image pixels (units = "px")'
                )
            elif camera is not None and z.height_m > 0:
                h = camera.plane_to_image(z.height_m)
                hom = np.c_[z.polygon, np.ones(len(z.polygon))] @ h.T
                outline = hom[:, :2] / hom[:, 2:3]
            else:
                outline = calibration.to_image(z.polygon)
            if not np.all(np.isfinite(outline)):
                raise ZoneError(f"zone {z.name!r} reaches behind the camera (beyond the horizon): it cannot be seen")
            placed.append((polygon_area(outline), z, outline))
        placed.sort(key=lambda item: item[0])
        return cls(tuple(z for _, z, _ in placed), tuple(o for _, _, o in placed), camera)

    def zone_at(self, pixel: ArrayLike) -> Zone | None:
        """The smallest zone whose image outline holds ``pixel`` (2,), or None."""
        for z, outline in zip(self.zones, self.outlines, strict=True):
            if bool(point_in_polygon(outline, pixel)):
                return z
        return None

    def outline(self, zone: Zone) -> NDArray[np.float64]:
        # By identity: zones hold arrays, so == between two of them is not a truth value.
        return next(o for z, o in zip(self.zones, self.outlines, strict=True) if z is zone)

    def on_surface(self, zone: Zone, pixel: ArrayLike, above_m: float = 0.0) -> NDArray[np.float64] | None:
        """Where an image point ``above_m`` over ``zone``'s surface lies, as floor (X, Y) metres (None for a pixel
        zone or without a recovered camera; NaN beyond the horizon)."""
        if self.camera is None or zone.units != "m":
            return None
        to_plane = np.linalg.inv(self.camera.plane_to_image(zone.height_m + above_m))
        hom = to_plane @ np.array([*np.asarray(pixel, dtype=np.float64)[:2], 1.0])
        if not hom[2] > 0:
            return np.full(2, np.nan)
        out: NDArray[np.float64] = hom[:2] / hom[2]
        return out

    def locate(
        self, keypoints: ArrayLike, state: ActivityState, min_visibility: float = 0.5
    ) -> tuple[Zone | None, bool]:
        """The zone of a person ``(33, 3)`` in ``state`` and whether they sit at the edge of a bed.

        At the edge: sitting with the hips within ``EDGE_FRACTION`` of the zone's size from its outline (inside
        or just outside: someone perched on the edge may have their hips beyond the mattress's outline), or
        with the hips inside and both ankles outside it (legs over the side). A sitting person whose hips are
        just outside a bed is placed in that bed."""
        kp = np.asarray(keypoints, dtype=np.float64)
        pixel = person_pixel(kp, state, min_visibility)
        zone = self.zone_at(pixel)
        if state != ActivityState.SITTING or not np.all(np.isfinite(pixel)):
            return zone, False
        for z, outline in zip(self.zones, self.outlines, strict=True):
            # Only beds have an edge to sit on: everyone in a chair has their legs over its front.
            if z.kind != ZoneKind.BED or (zone is not None and z is not zone):
                continue
            seat = self.on_surface(z, pixel, HIP_ABOVE_SEAT_M)
            if seat is not None and np.all(np.isfinite(seat)):
                # In metres on the mattress: perspective neither shrinks the margin nor lifts the legs out of it.
                inside = bool(point_in_polygon(z.polygon, seat))
                gap = edge_distance(z.polygon, seat)
                if inside or gap <= EDGE_OUTSIDE_M:
                    return z, gap <= (EDGE_INSIDE_M if inside else EDGE_OUTSIDE_M)
                continue
            margin = EDGE_FRACTION * float(np.sqrt(polygon_area(outline)))
            inside = bool(point_in_polygon(outline, pixel))
            near = edge_distance(outline, pixel) <= margin
            ankles = [kp[lm, :2] for lm in (Landmark.LEFT_ANKLE, Landmark.RIGHT_ANKLE) if kp[lm, 2] >= min_visibility]
            legs_over = inside and len(ankles) == 2 and not np.any(point_in_polygon(outline, np.array(ankles)))
            if inside or near:
                return z, near or legs_over
        return zone, False


def person_pixel(keypoints: ArrayLike, state: ActivityState, min_visibility: float = 0.5) -> NDArray[np.float64]:
    """The image point (2,) that places a person ``(33, 3)`` in a zone: feet midpoint when upright, hips
    midpoint when sitting or lying (see the module docstring); NaN when those landmarks are unseen."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if state in (ActivityState.SITTING, ActivityState.LYING):
        groups: tuple[tuple[Landmark, ...], ...] = ((Landmark.LEFT_HIP, Landmark.RIGHT_HIP),)
    else:
        groups = (
            (Landmark.LEFT_HEEL, Landmark.RIGHT_HEEL, Landmark.LEFT_FOOT_INDEX, Landmark.RIGHT_FOOT_INDEX),
            (Landmark.LEFT_ANKLE, Landmark.RIGHT_ANKLE),
            (Landmark.LEFT_HIP, Landmark.RIGHT_HIP),
        )
    for group in groups:
        seen = [lm for lm in group if kp[lm, 2] >= min_visibility]
        if seen:
            out: NDArray[np.float64] = kp[seen, :2].mean(axis=0)
            return out
    return np.full(2, np.nan)
