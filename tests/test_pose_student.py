"""The distilled pose student: decoding, crop geometry, splits, teacher agreement, training, export.

Numpy-only parts run everywhere; the parts that need torch skip with a reason when it is missing (install the
CPU build with ``pip install torch==2.13.0``). Students here are tiny and train for seconds on generated crops
whose keypoints are known exactly.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gaitwatch.pose.keypoints import NUM_LANDMARKS, Landmark
from gaitwatch.pose.offline.distill import STORE_CONTEXT, DistillData, VideoInfo, split
from gaitwatch.pose.offline.evaluation import pck, reference_dataset
from gaitwatch.pose.student import (
    STUDENT_KEYPOINTS,
    StudentSpec,
    assign_pairs,
    crop_matrix,
    crop_to_heatmap,
    decode_heatmaps,
    flip_permutation,
    heatmap_to_crop,
    invert_affine,
    landmark_fill_index,
    render_heatmaps,
    side_pairs,
    warp_crop,
)
from gaitwatch.pose.student_backend import StudentBackend, StudentModelError, StudentSettings

TINY = StudentSpec(
    input_height=64, input_width=48, widths=(8, 8, 16, 16), blocks=(1, 1, 1), expansion=2, decoder_width=8
)


# ----------------------------------------------------------------------------------------------------
# Decoding


def test_decoding_returns_the_known_subpixel_peak() -> None:
    rng = np.random.default_rng(0)
    centres = rng.uniform([2.0, 2.0], [21.0, 29.0], size=(50, 2))
    heatmaps = render_heatmaps(centres[None], 32, 24, sigma=1.5)[0]
    xy, peak = decode_heatmaps(heatmaps)
    np.testing.assert_allclose(xy, centres, atol=1e-3)
    # Plain arg-max would be up to half a cell off; the refinement is what makes it exact.
    assert np.abs(np.round(centres) - centres).max() > 0.4
    assert np.all(peak > 0.75)


def test_decoding_stays_close_on_a_noisy_peak_and_never_jumps_far() -> None:
    rng = np.random.default_rng(1)
    centres = rng.uniform([3.0, 3.0], [20.0, 28.0], size=(200, 2))
    heatmaps = render_heatmaps(centres, 32, 24, sigma=1.5) + rng.normal(0.0, 0.02, size=(200, 32, 24))
    xy, _ = decode_heatmaps(heatmaps)
    err = np.linalg.norm(xy - centres, axis=1)
    assert float(np.median(err)) < 0.1
    assert float(err.max()) < 0.5


def test_decoding_a_peak_on_the_border_or_a_flat_map_stays_in_the_map() -> None:
    border = render_heatmaps(np.array([[0.0, 5.3]]), 32, 24, sigma=1.5)[0]
    xy, _ = decode_heatmaps(border)
    assert xy[0] == pytest.approx(0.0)
    assert xy[1] == pytest.approx(5.3, abs=1e-3)
    flat, _ = decode_heatmaps(np.zeros((32, 24)))
    assert np.all(np.isfinite(flat)) and 0.0 <= flat[0] <= 23.0 and 0.0 <= flat[1] <= 31.0


def test_a_hedged_pair_is_split_between_both_feet_by_the_guide() -> None:
    # Both the left and the right ankle channels see both feet (the student is unsure which is which), the
    # stronger foot at (6.2, 20.4) in both: plain arg-max puts both ankles there. The coarse guide says the
    # left ankle is the other foot.
    foot_a, foot_b = np.array([6.2, 20.4]), np.array([15.7, 22.1])
    peaks = render_heatmaps(np.array([[foot_a, foot_b]]), 32, 24, sigma=1.5)[0]  # (2, 32, 24)
    hedged = 0.6 * peaks[0] + 0.4 * peaks[1]
    heatmaps = np.stack([hedged, hedged])[None]  # (1, 2 channels: left, right, 32, 24)
    plain, _ = decode_heatmaps(heatmaps)
    np.testing.assert_allclose(plain[0, 0], plain[0, 1])
    guide = np.array([[[14.0, 21.0], [7.0, 19.0]]])
    xy = assign_pairs(heatmaps, guide, [(0, 1)])
    np.testing.assert_allclose(xy[0, 0], foot_b, atol=0.2)
    np.testing.assert_allclose(xy[0, 1], foot_a, atol=0.2)
    # One foot only (feet together): both keep the one peak whatever the guide says.
    single = np.stack([peaks[0], peaks[0]])[None]
    np.testing.assert_allclose(assign_pairs(single, guide, [(0, 1)])[0], [foot_a, foot_a], atol=1e-3)
    assert (Landmark.LEFT_ANKLE, Landmark.RIGHT_ANKLE) in [
        (STUDENT_KEYPOINTS[a], STUDENT_KEYPOINTS[b]) for a, b in side_pairs(STUDENT_KEYPOINTS)
    ]


def test_heatmap_and_crop_coordinates_are_inverse() -> None:
    pts = np.array([[0.0, 0.0], [37.25, 101.5], [96.0, 128.0]])
    np.testing.assert_allclose(heatmap_to_crop(crop_to_heatmap(pts, 4), 4), pts)
    # The centre of heatmap cell 0 is the centre of crop pixels 0-3.
    np.testing.assert_allclose(heatmap_to_crop(np.zeros(2), 4), [2.0, 2.0])


# ----------------------------------------------------------------------------------------------------
# Keypoint schema and geometry


def test_flip_permutation_swaps_left_and_right_and_is_its_own_inverse() -> None:
    perm = flip_permutation(STUDENT_KEYPOINTS)
    names = [lm.name for lm in STUDENT_KEYPOINTS]
    assert names[perm[names.index("LEFT_ANKLE")]] == "RIGHT_ANKLE"
    assert names[perm[names.index("RIGHT_HEEL")]] == "LEFT_HEEL"
    assert names[perm[names.index("NOSE")]] == "NOSE"
    np.testing.assert_array_equal(perm[perm], np.arange(len(perm)))
    with pytest.raises(ValueError, match="mirror"):
        flip_permutation((Landmark.NOSE, Landmark.LEFT_ANKLE))


def test_every_blazepose_landmark_is_filled_and_only_predicted_ones_are_marked() -> None:
    rows, predicted = landmark_fill_index(STUDENT_KEYPOINTS)
    assert rows.shape == (NUM_LANDMARKS,) and int(predicted.sum()) == len(STUDENT_KEYPOINTS)
    assert STUDENT_KEYPOINTS[rows[Landmark.LEFT_PINKY]] == Landmark.LEFT_WRIST
    assert STUDENT_KEYPOINTS[rows[Landmark.RIGHT_HEEL]] == Landmark.RIGHT_HEEL
    assert not predicted[Landmark.MOUTH_LEFT] and predicted[Landmark.LEFT_FOOT_INDEX]


def test_crop_holds_the_box_with_the_configured_margin_in_portrait() -> None:
    spec = StudentSpec()
    box = np.array([100.0, 50.0, 140.0, 150.0])  # 40 x 100 px person
    m = crop_matrix(box, spec)
    corners = np.array([[100.0, 50.0], [140.0, 150.0]]) @ m[:, :2].T + m[:, 2]
    # Box height fills 1 / roi_scale of the crop height, centred.
    assert corners[1, 1] - corners[0, 1] == pytest.approx(spec.input_height / spec.roi_scale)
    np.testing.assert_allclose(corners.mean(axis=0), [spec.input_width / 2, spec.input_height / 2])
    back = invert_affine(m)
    np.testing.assert_allclose(corners @ back[:, :2].T + back[:, 2], [[100.0, 50.0], [140.0, 150.0]])
    # A wide box (someone lying) is fitted by its width instead, so it is never cut.
    wide = np.array([0.0, 0.0, 200.0, 60.0])
    mw = crop_matrix(wide, spec)
    assert 200.0 * mw[0, 0] <= spec.input_width


def test_the_stored_context_crop_contains_the_exact_inference_crop() -> None:
    # Training reads the inference view out of the larger stored crop; it must be pixel-identical to what the
    # backend cuts from the frame, or validation would not measure the deployed model.
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    spec = StudentSpec()
    for box in ([100.3, 40.7, 141.1, 151.9], [-10.0, 100.0, 30.0, 230.0]):
        b = np.array(box)
        nominal = warp_crop(image, crop_matrix(b, spec), spec.input_width, spec.input_height)
        h, w = round(spec.input_height * STORE_CONTEXT), round(spec.input_width * STORE_CONTEXT)
        stored = warp_crop(image, crop_matrix(b, spec, STORE_CONTEXT), w, h)
        oy, ox = (h - spec.input_height) // 2, (w - spec.input_width) // 2
        np.testing.assert_array_equal(stored[oy : oy + spec.input_height, ox : ox + spec.input_width], nominal)


def test_spec_survives_its_metadata_form_and_rejects_nonsense() -> None:
    assert StudentSpec.from_dict(TINY.as_dict()) == TINY
    with pytest.raises(ValueError, match="multiple of 16"):
        StudentSpec(input_height=100)
    with pytest.raises(ValueError):
        StudentSpec.from_dict({"input_height": 64})


# ----------------------------------------------------------------------------------------------------
# Generated distillation data: bright discs at known keypoints on textured background.


def _generated_data(n: int, spec: StudentSpec, seed: int = 0, videos: int = 1, duration_s: float = 10.0) -> DistillData:
    rng = np.random.default_rng(seed)
    hc, wc = round(spec.input_height * STORE_CONTEXT), round(spec.input_width * STORE_CONTEXT)
    crops = rng.integers(0, 60, size=(n, hc, wc, 3), dtype=np.uint8)
    keypoints = np.zeros((n, NUM_LANDMARKS, 3), dtype=np.float32)
    matrix = np.zeros((n, 2, 3))
    box = np.zeros((n, 4))
    colours = rng.integers(80, 256, size=(NUM_LANDMARKS, 3))
    for i in range(n):
        # The "frame" is the stored crop itself, shifted: frame = stored + offset.
        off = rng.uniform(0, 200, 2)
        matrix[i] = [[1.0, 0.0, -off[0]], [0.0, 1.0, -off[1]]]
        box[i] = [off[0] + 0.2 * wc, off[1] + 0.1 * hc, off[0] + 0.8 * wc, off[1] + 0.9 * hc]
        pts = rng.uniform([0.25 * wc, 0.15 * hc], [0.75 * wc, 0.85 * hc], size=(NUM_LANDMARKS, 2))
        for j in spec.keypoints:
            x, y = pts[j]
            yy, xx = np.mgrid[0:hc, 0:wc]
            disc = (xx + 0.5 - x) ** 2 + (yy + 0.5 - y) ** 2 <= 2.5**2
            crops[i][disc] = colours[j]
        keypoints[i, :, :2] = pts + off
        keypoints[i, :, 2] = 0.9
    t = np.linspace(0.0, duration_s, n, endpoint=False)
    video = (np.arange(n) * videos // n).astype(np.int32)
    return DistillData(
        videos=tuple(VideoInfo(f"/gen/v{k}.avi", 1, int(duration_s * 10), 10.0) for k in range(videos)),
        spec_geometry=(spec.input_height, spec.input_width, float(spec.roi_scale)),
        context=STORE_CONTEXT,
        crops=crops,
        matrix=matrix,
        box=box,
        keypoints=keypoints,
        world=np.zeros((n, NUM_LANDMARKS, 3), dtype=np.float32),
        presence=np.where(np.arange(n) % 8 == 7, 0.01, 0.99).astype(np.float32),
        video=video,
        frame=np.arange(n, dtype=np.int32),
        t=t,
        track_id=np.arange(n, dtype=np.int64),
    )


def test_time_split_holds_out_the_end_of_each_video_without_interleaving() -> None:
    data = _generated_data(40, TINY)
    parts = split(data, 0.3, "time")
    assert parts.kind == "time"
    assert set(parts.train.tolist()).isdisjoint(parts.val.tolist())
    assert len(parts.train) + len(parts.val) == len(data)
    assert data.t[parts.train].max() < 7.0 <= data.t[parts.val].min()


def test_video_split_holds_out_whole_videos() -> None:
    data = _generated_data(60, TINY, videos=3)
    parts = split(data, 0.3, "auto")
    assert parts.kind == "video"
    assert set(data.video[parts.val].tolist()) == {2}
    assert set(data.video[parts.train].tolist()) == {0, 1}
    with pytest.raises(ValueError, match="two videos"):
        split(_generated_data(10, TINY), 0.3, "video")


def test_distill_data_round_trips_through_its_cache_file(tmp_path: Path) -> None:
    data = _generated_data(6, TINY)
    data.save(tmp_path / "data.npz")
    back = DistillData.load(tmp_path / "data.npz")
    assert back.videos == data.videos and back.spec_geometry == data.spec_geometry
    np.testing.assert_array_equal(back.crops, data.crops)
    np.testing.assert_array_equal(back.keypoints, data.keypoints)


def test_teacher_agreement_counts_errors_against_the_box_size() -> None:
    n = 4
    ref = np.zeros((n, NUM_LANDMARKS, 3))
    ref[:, :, 2] = 1.0
    ref[:, Landmark.LEFT_ANKLE, 2] = 0.2  # guessed by the teacher
    box = np.tile([0.0, 0.0, 50.0, 100.0], (n, 1))  # longer side 100 px
    pred = ref[:, :, :2].copy()
    pred[:, Landmark.LEFT_ANKLE, 0] += 7.0  # within 0.1, not within 0.05
    pred[:, Landmark.RIGHT_ANKLE, 1] += 12.0  # beyond 0.1
    paths = [Path("v.avi")] * n
    every = reference_dataset("agree", paths, box, ref, STUDENT_KEYPOINTS)
    r1, r05 = pck(every, pred, 0.1), pck(every, pred, 0.05)
    assert r1.groups["ankles"] == pytest.approx(0.5)
    assert r05.groups["ankles"] == pytest.approx(0.0)
    assert r1.overall == pytest.approx(20 / 21)
    assert r1.per_joint["left_heel"] == pytest.approx(1.0)
    seen = reference_dataset("agree", paths, box, ref, STUDENT_KEYPOINTS, min_visibility=0.5)
    assert pck(seen, pred, 0.1).groups["ankles"] == pytest.approx(0.0)  # only the right ankle counts


def test_missing_student_directory_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(StudentModelError, match="gaitwatch distill"):
        StudentBackend(StudentSettings(tmp_path / "nowhere"))
    (tmp_path / "student.json").write_text('{"format": "something-else"}', encoding="utf-8")
    with pytest.raises(StudentModelError, match="not a gaitwatch-pose-student"):
        StudentBackend(StudentSettings(tmp_path))


def test_everything_but_training_imports_without_torch() -> None:
    # A ward PC running the ONNX student (or only BlazePose) needs no torch: the modules import without it and
    # the torch-only steps name the exact install command.
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import gaitwatch.pose.student, gaitwatch.pose.student_backend, gaitwatch.pose.offline.distill\n"
        "import gaitwatch.tools.cmd_distill, gaitwatch.tools.cmd_eval_pose\n"
        "from gaitwatch.pose.student import StudentUnavailableError, require_torch\n"
        "try:\n    require_torch()\nexcept StudentUnavailableError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "pip install torch==2.13.0" in out.stdout


# ----------------------------------------------------------------------------------------------------
# torch: training, resume, export


@pytest.fixture(scope="module")
def torch_module() -> object:
    return pytest.importorskip("torch", reason="the student's training needs torch: pip install torch==2.13.0")


def _tiny_train_settings(epochs: int) -> object:
    from gaitwatch.pose.offline.distill import TrainSettings

    return TrainSettings(
        epochs=epochs,
        batch_size=16,
        learning_rate=1e-2,
        rotation_deg=0.0,
        scale_jitter=0.0,
        shift_jitter=0.02,
        photometric=0.0,
        threads=1,
    )


def test_fpd_loss_mixes_teacher_and_truth_by_alpha(torch_module: object) -> None:
    import torch

    from gaitwatch.pose.student import fpd_loss

    s = torch.zeros(2, 3, 4, 4)
    teacher = torch.ones(2, 3, 4, 4)  # error 16 per heatmap
    truth = torch.zeros(2, 3, 4, 4)  # error 0
    w = torch.ones(2, 3)
    assert float(fpd_loss(s, teacher, w)) == pytest.approx(16.0)
    assert float(fpd_loss(s, teacher, w, truth, alpha=0.25)) == pytest.approx(4.0)
    w0 = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert float(fpd_loss(s, teacher, w0)) == pytest.approx(16.0)  # dropped keypoints do not dilute


def test_tiny_student_learns_generated_keypoints(torch_module: object) -> None:
    from gaitwatch.pose.offline.distill import TrainSettings, train

    data = _generated_data(96, TINY)
    settings = _tiny_train_settings(6)
    assert isinstance(settings, TrainSettings)
    result = train(data, np.arange(len(data), dtype=np.int64), TINY, settings)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < 0.5 * losses[0]


def test_resumed_training_equals_an_uninterrupted_run(tmp_path: Path, torch_module: object) -> None:
    import torch

    from gaitwatch.pose.offline.distill import DistillError, TrainSettings, train

    data = _generated_data(32, TINY)
    rows = np.arange(len(data), dtype=np.int64)
    two = _tiny_train_settings(2)
    assert isinstance(two, TrainSettings)
    straight = train(data, rows, TINY, two)
    ckpt = tmp_path / "checkpoint.pt"
    # A session that stops after the first epoch (as a killed run would), then a resumed one.
    train(data, rows, TINY, two, checkpoint=ckpt, until_epoch=1)
    assert torch.load(str(ckpt), weights_only=False)["epoch"] == 1
    resumed = train(data, rows, TINY, two, checkpoint=ckpt, resume=True)
    assert [h["epoch"] for h in resumed.history] == [1.0, 2.0]
    for a, b in zip(straight.net.state_dict().values(), resumed.net.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    other = _tiny_train_settings(3)
    assert isinstance(other, TrainSettings)
    with pytest.raises(DistillError, match="another run"):
        train(data, rows, TINY, other, checkpoint=ckpt, resume=True)


def test_export_round_trip_gives_the_torch_outputs(tmp_path: Path, torch_module: object) -> None:
    import torch

    from gaitwatch.pose.offline.distill import export, torch_predict
    from gaitwatch.pose.student import build_student_net

    torch.manual_seed(0)
    net = build_student_net(TINY).eval()
    path = export(net, TINY, tmp_path, {"teacher": {"name": "test"}})
    assert path.name == "student.json"
    rng = np.random.default_rng(3)
    crops = rng.integers(0, 256, size=(5, TINY.input_height, TINY.input_width, 3), dtype=np.uint8)
    want = torch_predict(net, crops, TINY)
    for runtime in ("onnxruntime", "torch"):
        backend = StudentBackend(StudentSettings(tmp_path, runtime=runtime, max_batch=2))
        assert backend.runtime == runtime
        got = backend.run_crops(crops)
        np.testing.assert_allclose(got.keypoints, want.keypoints, atol=1e-2)
        np.testing.assert_allclose(got.presence, want.presence, atol=1e-4)
        np.testing.assert_allclose(got.world, want.world, atol=1e-4)


def test_backend_maps_crop_keypoints_back_into_the_frame(tmp_path: Path, torch_module: object) -> None:
    import torch

    from gaitwatch.pose.offline.distill import export
    from gaitwatch.pose.student import build_student_net

    torch.manual_seed(0)
    export(build_student_net(TINY).eval(), TINY, tmp_path, {})
    backend = StudentBackend(StudentSettings(tmp_path))
    image = np.random.default_rng(4).integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    boxes = np.array([[50.0, 40.0, 90.0, 140.0], [200.0, 100.0, 230.0, 170.0], [10.0, 10.0, 30.0, 60.0]])
    poses = backend.estimate(image, np.array([7, 8, 9]), boxes)
    assert poses.track_ids.tolist() == [7, 8, 9]
    assert poses.keypoints.shape == (3, NUM_LANDMARKS, 3) and poses.world.shape == (3, NUM_LANDMARKS, 3)
    for i, box in enumerate(boxes):
        # Heatmap peaks lie inside the crop, which spans roi_scale x the box around its centre.
        xy = poses.keypoints[i, :, :2]
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half_h = TINY.roi_scale * (box[3] - box[1]) / 2
        assert np.all(np.abs(xy[:, 1] - cy) <= half_h + 1e-3)
        assert np.all(np.abs(xy[:, 0] - cx) <= half_h * TINY.input_width / TINY.input_height + 1e-3)
    # Landmarks the student does not predict are stand-ins with visibility 0.
    assert np.all(poses.keypoints[:, Landmark.LEFT_PINKY, 2] == 0.0)
    np.testing.assert_array_equal(
        poses.keypoints[:, Landmark.LEFT_PINKY, :2], poses.keypoints[:, Landmark.LEFT_WRIST, :2]
    )
    one = backend.estimate(image, np.array([8]), boxes[1:2])
    np.testing.assert_allclose(one.keypoints[0], poses.keypoints[1], atol=1e-4)  # batching changes nothing


# ---------------------------------------------------------------------------------------------------------------
# Commands


def _cli(argv: list[str]) -> int:
    import argparse

    from gaitwatch.tools import cmd_distill, cmd_eval_pose

    parser = argparse.ArgumentParser(prog="gaitwatch")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd_distill.register(sub)
    cmd_eval_pose.register(sub)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_eval_pose_runs_a_student_on_coco_format_annotations(
    tmp_path: Path, torch_module: object, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    import cv2
    import torch

    from gaitwatch.pose.offline.distill import export
    from gaitwatch.pose.student import build_student_net

    torch.manual_seed(0)
    export(build_student_net(TINY).eval(), TINY, tmp_path / "student", {})
    image = np.random.default_rng(5).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), image)
    kp = [0.0] * 51
    kp[15 * 3 : 15 * 3 + 3] = [60.0, 100.0, 2.0]  # left ankle
    coco = {
        "images": [{"id": 1, "file_name": "a.png"}],
        "annotations": [{"image_id": 1, "bbox": [40.0, 10.0, 40.0, 100.0], "keypoints": kp, "iscrowd": 0}],
        "categories": [{"keypoints": [
            "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
            "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
            "right_knee", "left_ankle", "right_ankle",
        ]}],
    }  # fmt: skip
    (tmp_path / "ann.json").write_text(json.dumps(coco), encoding="utf-8")
    out = tmp_path / "report.json"
    argv = ["eval-pose", str(tmp_path / "ann.json"), str(tmp_path), "--student", str(tmp_path / "student")]
    assert _cli([*argv, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["backend"] == "student" and report["people"] == 1
    assert report["pck_0.1"]["ankles"] in (0.0, 1.0)
    assert "backend=student" in capsys.readouterr().out


def test_command_line_mistakes_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(["eval-pose", "--agreement", str(tmp_path / "v.avi")]) == 2
    assert "--student" in capsys.readouterr().err
    assert _cli(["eval-pose", "--backend", "student"]) == 2
    assert _cli(["eval-pose"]) == 2
    assert _cli(["distill", str(tmp_path / "missing.avi"), "--out", str(tmp_path / "o"), "--collect-only"]) == 1
    assert "missing.avi" in capsys.readouterr().err
    assert _cli(["distill", "x.avi", "--out", str(tmp_path / "o"), "--input", "100x7"]) == 1


SHARED_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "vtest.avi"


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_VIDEO.is_file(), reason=f"real walking footage not found at {SHARED_VIDEO}")
def test_collection_runs_the_real_pipeline_and_keeps_people_with_teacher_targets() -> None:
    from gaitwatch.pose.blazepose import BlazePoseBackend
    from gaitwatch.pose.offline.distill import CollectSettings, collect
    from gaitwatch.tools.cmd_record import offline_settings
    from gaitwatch.tools.recorder import VideoRun, pipeline_run

    spec = StudentSpec()
    # The first 4% of the clip (~32 frames, ~4.5 s at its true 7 fps), through the daemon's default pipeline.
    settings = CollectSettings(fps=7.0, end_fraction=0.04, background_per_s=2.0)
    daemon = offline_settings(None, SHARED_VIDEO)
    data = collect([SHARED_VIDEO], spec, BlazePoseBackend(), pipeline_run(daemon), settings)
    people = data.track_id >= 0
    # Exactly the crops the daemon's pipeline poses on these frames (its detector cadence, tracker, pose schedule,
    # verification of new tracks, pose-derived boxes), frame by frame: the same pipeline run on its own.
    run = VideoRun(SHARED_VIDEO, daemon, fps=7.0, pose=BlazePoseBackend())
    crops = {r.frame.seq: r.pose_crops - r.recovery_crops for r in run.results(stop=int(data.frame.max()) + 1)}
    collected = dict(zip(*np.unique(data.frame[people], return_counts=True), strict=True))
    assert {k: v for k, v in crops.items() if v} == {int(k): int(v) for k, v in collected.items()}
    assert people.sum() >= 20 and (~people).sum() >= 3
    # Tracked boxes hold people (the teacher agrees), background boxes mostly do not.
    assert float(np.mean(data.presence[people] >= 0.5)) > 0.9
    assert float(np.mean(data.presence[~people] < 0.5)) > 0.6
    # The teacher's ankles lie inside the student's view of each tracked person.
    lm = [Landmark.LEFT_ANKLE, Landmark.RIGHT_ANKLE]
    for r in np.flatnonzero(people & (data.presence >= 0.5)):
        m = crop_matrix(data.box[r], spec)
        xy = data.keypoints[r, lm, :2] @ m[:, :2].T + m[:, 2]
        assert np.all((xy >= 0) & (xy <= [spec.input_width, spec.input_height]))
    nominal = data.nominal_crops(spec)
    assert nominal.shape == (len(data), spec.input_height, spec.input_width, 3)
