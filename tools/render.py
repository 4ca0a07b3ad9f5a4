"""Annotated video for the demo and for admins checking a camera's placement: boxes, track ids, skeletons and
each person's latest cadence. It writes to a local file only; no image ever leaves the PC."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from gaitwatch.daemon.pipeline import FrameResult
from gaitwatch.pose.keypoints import SKELETON
from gaitwatch.tracking.types import TrackState

# Landmarks drawn only when the model believes they are visible.
DRAW_MIN_VISIBILITY = 0.5


def _colour(track_id: int) -> tuple[int, int, int]:
    """A stable, well-separated colour per track id (golden-angle hue steps)."""
    hue = int((track_id * 137.508) % 180)
    bgr = cv2.cvtColor(np.array([[[hue, 200, 255]]], dtype=np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def annotate(image: NDArray[np.uint8], result: FrameResult, cadence_spm: dict[int, float]) -> NDArray[np.uint8]:
    """Draw ``result`` on a copy of ``image``; ``cadence_spm`` holds each track's latest valid cadence."""
    out = image.copy()
    for track_id, box, state in zip(result.tracks.ids, result.tracks.xyxy, result.tracks.state, strict=True):
        tid = int(track_id)
        colour = _colour(tid) if state == TrackState.CONFIRMED else (160, 160, 160)
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 1 if state != TrackState.CONFIRMED else 2)
        label = f"#{tid}"
        if tid in cadence_spm:
            label += f" {cadence_spm[tid]:.0f} spm"
        (text_w, _), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        x = max(0, min(x1, out.shape[1] - text_w - 2))  # keep labels of people at the edge readable
        cv2.putText(out, label, (x, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    for track_id, keypoints in zip(result.poses.track_ids, result.poses.keypoints, strict=True):
        colour = _colour(int(track_id))
        visible = keypoints[:, 2] >= DRAW_MIN_VISIBILITY
        for a, b in SKELETON:
            if visible[a] and visible[b]:
                pa = (int(keypoints[a, 0]), int(keypoints[a, 1]))
                pb = (int(keypoints[b, 0]), int(keypoints[b, 1]))
                cv2.line(out, pa, pb, colour, 2, cv2.LINE_AA)
    stamp = f"{result.frame.camera} frame {result.frame.seq}  tracks {len(result.tracks)}"
    cv2.putText(out, stamp, (8, out.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


class VideoRenderer:
    """Writes annotated frames to an mp4 file at the source's frame rate."""

    def __init__(self, path: Path, fps: float) -> None:
        self._path = path
        self._fps = fps
        self._writer: cv2.VideoWriter | None = None
        self._cadence: dict[int, float] = {}

    def add(self, result: FrameResult) -> None:
        for gait in result.gait:
            if gait.metrics.valid and gait.metrics.cadence_spm is not None:
                self._cadence[gait.metrics.track_id] = gait.metrics.cadence_spm
        alive = {int(i) for i in result.tracks.ids}
        self._cadence = {k: v for k, v in self._cadence.items() if k in alive}
        image = annotate(result.frame.image, result, self._cadence)
        if self._writer is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            size = (image.shape[1], image.shape[0])
            self._writer = cv2.VideoWriter(str(self._path), cv2.VideoWriter.fourcc(*"mp4v"), self._fps, size)
            if not self._writer.isOpened():
                raise OSError(f"cannot write video {self._path}: OpenCV has no mp4v encoder or the path is unwritable")
        self._writer.write(image)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
