"""Recordings (no pickle, no pixels) and the offline run of the gait stage over them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gaitwatch.gait.offline.replay import analyze_recording
from gaitwatch.gait.offline.synthetic import WalkerParams, generate_walk, sample_walker
from gaitwatch.gait.recording import Recording
from gaitwatch.gait.settings import AlertPolicySettings
from gaitwatch.gait.types import AlertPhase, AlertType, GaitWindow


def _two_people() -> Recording:
    a = generate_walk(WalkerParams(cadence_spm=105.0), fps=15.0, duration_s=16.0, seed=1)
    b = generate_walk(sample_walker("slow", np.random.default_rng(2)), fps=15.0, duration_s=16.0, seed=2)
    return Recording(
        np.concatenate([np.full(a.t.shape[0], 4), np.full(b.t.shape[0], 9)]).astype(np.int64),
        np.concatenate([a.t, b.t + 0.013]),
        np.concatenate([a.keypoints, b.keypoints]),
        np.concatenate([a.world, b.world]),
        {"fps": 15.0, "source": "test"},
    )


def test_save_load_round_trip_without_pickle(tmp_path: Path) -> None:
    rec = replace(_two_people(), ended_ids=np.array([4], dtype=np.int64), ended_t=np.array([16.5]), t_end=17.25)
    path = tmp_path / "r.npz"
    rec.save(path)
    with np.load(path, allow_pickle=False) as z:  # every member is a plain array
        assert set(z.files) == {"track_ids", "t", "keypoints", "world", "ended_ids", "ended_t", "t_end", "meta"}
    back = Recording.load(path)
    np.testing.assert_array_equal(back.ended_ids, [4])
    np.testing.assert_array_equal(back.ended_t, [16.5])
    assert back.t_end == 17.25
    assert back.tracks() == [4, 9]
    np.testing.assert_array_equal(back.t, rec.t)
    np.testing.assert_array_equal(back.keypoints, rec.keypoints)
    assert back.meta["fps"] == 15.0
    track = back.track(9)
    assert isinstance(track, GaitWindow) and track.track_id == 9 and np.all(np.diff(track.t) > 0)


def test_version_1_files_without_track_ends_still_load(tmp_path: Path) -> None:
    rec = _two_people()
    path = tmp_path / "v1.npz"
    meta = '{"format": "gaitwatch-recording", "version": 1, "fps": 15.0}'
    np.savez(path, track_ids=rec.track_ids, t=rec.t, keypoints=rec.keypoints, world=rec.world, meta=np.asarray(meta))
    back = Recording.load(path)
    assert back.ended_ids.shape == (0,) and back.t_end is None
    np.testing.assert_array_equal(back.t, rec.t)


def test_load_refuses_foreign_npz(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    np.savez(path, meta=np.asarray('{"format": "something-else"}'))
    with pytest.raises(ValueError):
        Recording.load(path)


def test_offline_run_windows_per_track_and_alerts_end_when_tracks_end() -> None:
    settings = AlertPolicySettings(window_count=4, k_start=3, k_end=1)
    result = analyze_recording(_two_people(), policy_settings=settings)
    by_track = {tid: [w for w in result.windows if w.metrics.track_id == tid] for tid in (4, 9)}
    for wins in by_track.values():
        ends = np.array([w.metrics.t_end for w in wins])
        assert float(np.median(np.diff(ends))) == pytest.approx(1.0, abs=0.1)  # one window per hop (1 s)
        assert len(wins) >= 8
    normal_valid = [w for w in by_track[4] if w.metrics.valid]
    assert normal_valid and all(w.assessment.label.value == "normal" for w in normal_valid)
    slow = [a for a in result.alerts if a.track_id == 9 and a.type == AlertType.ABNORMAL_GAIT]
    assert slow[0].phase == AlertPhase.START and slow[-1].phase == AlertPhase.END
    assert not [a for a in result.alerts if a.track_id == 4]
