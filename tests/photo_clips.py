"""Short clips made of real people: a person cut out of the shared COCO photos (with the photo's own background
around them) pasted onto a fixed textured backdrop, moved, turned or left still, frame by frame. The pipeline
then sees real pixels of a real person, with the motion and postures the test needs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from gaitwatch.daemon.assembly import SharedModels, build_camera_pipeline
from gaitwatch.daemon.pipeline import FrameResult
from gaitwatch.daemon.settings import parse_settings
from gaitwatch.tracking.types import Frame

COCO = Path(__file__).resolve().parents[2] / "shared" / "data" / "pose" / "coco"
ANNOTATIONS = COCO / "test_coco.json"
WIDTH, HEIGHT = 640, 480

# People of the shared COCO photos (annotation ids; postures as in tests/data/posture_labels.csv).
SKIER_UPRIGHT = 442619  # 000000000785.jpg, standing, full body
SEATED = 1717641  # 000000196141.jpg, seated


@dataclass(frozen=True, slots=True)
class Cutout:
    """A person with a margin of their photo around them; ``box`` is the person's box inside ``image``."""

    image: NDArray[np.uint8]
    box: NDArray[np.float64]


def cutout(annotation_id: int, height_px: float, margin: float = 0.15) -> Cutout:
    """The person of ``annotation_id``, scaled so the person's box is ``height_px`` tall."""
    data: dict[str, Any] = json.loads(ANNOTATIONS.read_text(encoding="utf-8"))
    ann = next(a for a in data["annotations"] if a["id"] == annotation_id)
    name = next(i["file_name"] for i in data["images"] if i["id"] == ann["image_id"])
    photo = cv2.imread(str(COCO / name), cv2.IMREAD_COLOR)
    assert photo is not None, f"cannot read {COCO / name}"
    x, y, w, h = (float(v) for v in ann["bbox"])
    pad = margin * h
    x0, y0 = int(max(0.0, x - pad)), int(max(0.0, y - pad))
    x1, y1 = int(min(photo.shape[1], x + w + pad)), int(min(photo.shape[0], y + h + pad))
    scale = height_px / h
    image = cv2.resize(photo[y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    box = np.array([(x - x0) * scale, (y - y0) * scale, (x + w - x0) * scale, (y + h - y0) * scale])
    return Cutout(np.ascontiguousarray(image, dtype=np.uint8), box)


def backdrop(seed: int = 7) -> NDArray[np.uint8]:
    """A still, mildly textured wall: smooth blotches, no edges a person detector could take for a person."""
    rng = np.random.default_rng(seed)
    small = rng.integers(90, 150, size=(12, 16, 3)).astype(np.uint8)
    return np.ascontiguousarray(cv2.resize(small, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC), dtype=np.uint8)


def turned(person: Cutout) -> Cutout:
    """The cutout turned 90 degrees clockwise (head to the right, as a person lying on the floor)."""
    h = person.image.shape[0]
    x1, y1, x2, y2 = person.box
    return Cutout(
        np.ascontiguousarray(cv2.rotate(person.image, cv2.ROTATE_90_CLOCKWISE)), np.array([h - y2, x1, h - y1, x2])
    )


def compose(background: NDArray[np.uint8], person: Cutout, left: float, top: float) -> NDArray[np.uint8]:
    """``background`` with ``person``'s cutout pasted at (left, top) (clipped to the frame)."""
    frame = background.copy()
    h, w = person.image.shape[:2]
    x0, y0 = round(left), round(top)
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(frame.shape[1], x0 + w), min(frame.shape[0], y0 + h)
    if fx1 > fx0 and fy1 > fy0:
        frame[fy0:fy1, fx0:fx1] = person.image[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
    return frame


def run(frames: Iterator[NDArray[np.uint8]], fps: float, overrides: dict[str, Any]) -> list[FrameResult]:
    """The daemon's own per-camera pipeline (``build_camera_pipeline``) over ``frames`` at ``fps``."""
    settings = parse_settings({"cameras": [{"id": "c", "source": "clip"}], **overrides})
    pipeline = build_camera_pipeline("c", settings, SharedModels(settings, inference_threads=1))
    return [pipeline.process(Frame("c", seq, seq / fps, image)) for seq, image in enumerate(frames)]


def compose_turned(
    background: NDArray[np.uint8], person: Cutout, feet: tuple[float, float], degrees: float
) -> NDArray[np.uint8]:
    """``background`` with ``person`` standing on ``feet`` (frame pixels) and tipped over ``degrees`` clockwise
    about that point (0 = upright, 90 = lying with the head to the right): a fall, frame by frame."""
    x1, _, x2, y2 = person.box
    foot = np.array([(x1 + x2) / 2.0, y2])
    rotation = cv2.getRotationMatrix2D((float(foot[0]), float(foot[1])), -degrees, 1.0)
    rotation[:, 2] += np.asarray(feet, dtype=np.float64) - foot
    size = (background.shape[1], background.shape[0])
    warped = cv2.warpAffine(person.image, rotation, size, flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.full(person.image.shape[:2], 255, np.uint8), rotation, size, flags=cv2.INTER_NEAREST)
    frame = background.copy()
    frame[mask > 0] = warped[mask > 0]
    return frame


def turned_box(person: Cutout, feet: tuple[float, float], degrees: float) -> NDArray[np.float64]:
    """The person's box after ``compose_turned`` (the bounds of their box's turned corners)."""
    x1, y1, x2, y2 = person.box
    foot = np.array([(x1 + x2) / 2.0, y2])
    corners = np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2]]) - foot
    a = np.radians(degrees)
    turn = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    points = corners @ turn.T + np.asarray(feet, dtype=np.float64)
    return np.array([*points.min(axis=0), *points.max(axis=0)])
