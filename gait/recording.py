"""Recordings: per-track keypoint trajectories with timestamps (never pixels), saved as a plain ``.npz``.

The file holds only numeric arrays and one JSON string; it is read with ``allow_pickle=False``, so opening a
recording can never run code. Rows are samples of any track, ordered by time within each track; the samples of
one frame share their time exactly and keep the order the pipeline posed them in.

A recording is what the gait stage was fed, so a replay can feed it again: the samples, when the tracker dropped
each recorded track (``ended_ids`` at ``ended_t``: the frame at which its alerts end live) and when the input
stopped (``t_end``: the stage is closed then). Version 1 files and generated recordings carry neither: their
tracks last until the last sample.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gaitwatch.gait.types import GaitWindow
from gaitwatch.pose.keypoints import NUM_LANDMARKS

RECORDING_FORMAT = "gaitwatch-recording"
RECORDING_VERSION = 2


@dataclass(frozen=True, slots=True)
class Recording:
    """Samples of several tracks: ``track_ids`` (M,), ``t`` (M,) seconds, ``keypoints`` (M, 33, 3) image px +
    visibility, ``world`` (M, 33, 3) metres. ``meta`` holds JSON-able facts (camera, fps, source, truth).
    ``ended_ids`` (K,) / ``ended_t`` (K,): the tracker dropped each of these tracks at that frame time;
    ``t_end``: the time of the last frame processed (None: the last sample's)."""

    track_ids: NDArray[np.int64]
    t: NDArray[np.float64]
    keypoints: NDArray[np.float32]
    world: NDArray[np.float32]
    meta: Mapping[str, Any] = field(default_factory=dict)
    ended_ids: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ended_t: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    t_end: float | None = None

    def __post_init__(self) -> None:
        m = self.t.shape[0]
        if self.track_ids.shape != (m,) or self.t.shape != (m,):
            raise ValueError(f"Recording: track_ids and t must be (M,); got {self.track_ids.shape}, {self.t.shape}")
        for name in ("keypoints", "world"):
            if getattr(self, name).shape != (m, NUM_LANDMARKS, 3):
                raise ValueError(f"Recording.{name} must be ({m}, {NUM_LANDMARKS}, 3)")
        k = self.ended_ids.shape[0]
        if self.ended_ids.shape != (k,) or self.ended_t.shape != (k,):
            raise ValueError(
                f"Recording: ended_ids and ended_t must be (K,); got {self.ended_ids.shape}, {self.ended_t.shape}"
            )
        if self.t_end is not None and m and self.t_end < float(self.t.max()):
            raise ValueError(f"Recording.t_end {self.t_end} is before the last sample ({float(self.t.max())})")

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def retimed(self, scale: float) -> Recording:
        """The same recording with every time stretched by ``scale`` about the first sample (a camera that
        misreported its frame rate)."""
        t0 = float(self.t.min()) if len(self) else 0.0
        return Recording(
            self.track_ids,
            t0 + (self.t - t0) * scale,
            self.keypoints,
            self.world,
            self.meta,
            self.ended_ids,
            t0 + (self.ended_t - t0) * scale,
            None if self.t_end is None else t0 + (self.t_end - t0) * scale,
        )

    def tracks(self) -> list[int]:
        return sorted(int(x) for x in np.unique(self.track_ids))

    def track(self, track_id: int) -> GaitWindow:
        """All samples of one track, in time order (duplicate times keep the first sample)."""
        sel = np.flatnonzero(self.track_ids == track_id)
        order = sel[np.argsort(self.t[sel], kind="stable")]
        t = self.t[order]
        keep = np.concatenate(([True], np.diff(t) > 0)) if t.shape[0] else np.zeros(0, dtype=bool)
        order = order[keep]
        return GaitWindow(track_id, self.t[order], self.keypoints[order], self.world[order])

    def save(self, path: Path) -> None:
        """Write ``path`` (.npz, compressed)."""
        meta = {"format": RECORDING_FORMAT, "version": RECORDING_VERSION, **dict(self.meta)}
        np.savez_compressed(
            path,
            track_ids=self.track_ids.astype(np.int64),
            t=self.t.astype(np.float64),
            keypoints=self.keypoints.astype(np.float32),
            world=self.world.astype(np.float32),
            ended_ids=self.ended_ids.astype(np.int64),
            ended_t=self.ended_t.astype(np.float64),
            t_end=np.asarray([] if self.t_end is None else [self.t_end], dtype=np.float64),
            meta=np.asarray(json.dumps(meta)),
        )

    @staticmethod
    def load(path: Path) -> Recording:
        """Read a recording written by ``save`` (or by the daemon's recorder); refuses other formats."""
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != RECORDING_FORMAT:
                raise ValueError(f"{path}: not a gaitwatch recording (format {meta.get('format')!r})")
            if int(meta.get("version", 0)) > RECORDING_VERSION:
                raise ValueError(f"{path}: recording version {meta.get('version')} is newer than this reader")
            ended = "ended_ids" in z.files  # version 2
            t_end = z["t_end"] if "t_end" in z.files else np.zeros(0)
            return Recording(
                z["track_ids"].astype(np.int64),
                z["t"].astype(np.float64),
                z["keypoints"].astype(np.float32),
                z["world"].astype(np.float32),
                meta,
                z["ended_ids"].astype(np.int64) if ended else np.zeros(0, dtype=np.int64),
                z["ended_t"].astype(np.float64) if ended else np.zeros(0, dtype=np.float64),
                float(t_end[0]) if t_end.shape[0] else None,
            )

    @staticmethod
    def single(window: GaitWindow, meta: Mapping[str, Any] | None = None) -> Recording:
        """A recording of one track."""
        return Recording(
            np.full(window.t.shape[0], window.track_id, dtype=np.int64),
            window.t.astype(np.float64),
            window.keypoints.astype(np.float32),
            window.world.astype(np.float32),
            dict(meta or {}),
        )
