"""A generated ward recording: several people walking at once, each in segments of normal or abnormal gait
(``gaitwatch.gait.offline.synthetic`` walkers), for the review page's tests and its timing."""

from __future__ import annotations

import numpy as np

from gaitwatch.gait.offline.synthetic import CameraView, generate_walk, sample_walker
from gaitwatch.gait.recording import Recording

Segment = tuple[int, float, float, str]  # track id, start, end, pattern


def ward_recording(
    people: int = 3, duration_s: float = 120.0, fps: float = 15.0, segment_s: float = 12.0, seed: int = 0
) -> tuple[Recording, list[Segment]]:
    """``people`` walkers seen together for ``duration_s``; every ``segment_s`` each walker crosses the view again
    with a gait drawn afresh (normal 60 %, else slow or shuffling). Person k is track k + 1, drawn at 0.6 scale in
    its own band of the 1280x720 image. Returns the recording and the true segments."""
    rng = np.random.default_rng(seed)
    ids, ts, kps, worlds = [], [], [], []
    truth: list[Segment] = []
    n_seg = int(np.ceil(duration_s / segment_s))
    for k in range(people):
        for i in range(n_seg):
            pattern = "normal" if rng.random() < 0.6 else str(rng.choice(["slow", "shuffling"]))
            dur = min(segment_s, duration_s - i * segment_s)
            walk = generate_walk(
                sample_walker(pattern, rng, dur),
                CameraView(view_deg=float(rng.uniform(60, 90))),
                None,
                fps=fps,
                duration_s=dur,
                seed=int(rng.integers(2**31)),
            )
            t0 = i * segment_s
            kp = walk.keypoints.copy()
            kp[:, :, 0] = kp[:, :, 0] * 0.6 + 250.0
            kp[:, :, 1] = kp[:, :, 1] * 0.6 + 40.0 + 220.0 * k
            ids.append(np.full(walk.t.shape[0], k + 1, dtype=np.int64))
            ts.append(walk.t - walk.t[0] + t0)
            kps.append(kp)
            worlds.append(walk.world)
            truth.append((k + 1, t0, t0 + dur, pattern))
    rec = Recording(
        np.concatenate(ids),
        np.concatenate(ts).astype(np.float64),
        np.concatenate(kps).astype(np.float32),
        np.concatenate(worlds).astype(np.float32),
        {"source": "synthetic-ward", "fps": fps, "people": people},
    )
    return rec, truth
