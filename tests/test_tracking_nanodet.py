"""The NanoDet person detector: its decoder, the shipped model on real frames, its errors, and the union it leads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from numpy.typing import NDArray
from repo_scripts import load_script

from gaitwatch.daemon.assembly import build_detector, search_region_settings
from gaitwatch.daemon.settings import TRACKER_SCORES_BY_DETECTOR, ConfigError, Settings, parse_settings
from gaitwatch.pose.landmark_refinement import LandmarkRefinedDetector
from gaitwatch.tracking.boxes import iou_matrix
from gaitwatch.tracking.detector import BetweenScansDetector
from gaitwatch.tracking.detector_union import FrameWideUnion, UnionDetector
from gaitwatch.tracking.nanodet import (
    INPUT_SIDE,
    MAX_CANDIDATES,
    NUM_CLASSES,
    REG_MAX,
    NanodetModelError,
    NanodetPersonDetector,
    NanodetSettings,
    decode_level,
)
from gaitwatch.tracking.offline.detection_eval import score_all
from gaitwatch.tracking.types import Detections

REPO = Path(__file__).resolve().parents[1]
VIDEO = REPO.parent / "shared" / "data" / "video" / "vtest.avi"
REFERENCE = VIDEO.with_name("vtest_PETS09-S2L1_det.txt")
needs_video = pytest.mark.skipif(not (VIDEO.is_file() and REFERENCE.is_file()), reason=f"needs {VIDEO}")


def _settings(**detector: Any) -> Settings:
    return parse_settings({"cameras": [{"id": "c", "source": "video.mp4"}], "detector": detector})


def _peaked(bins: list[int]) -> NDArray[np.float32]:
    """Side logits (4 * (REG_MAX + 1),) whose distributions all sit on ``bins`` (left, top, right, bottom)."""
    logits = np.full((4, REG_MAX + 1), -30.0, dtype=np.float32)
    logits[np.arange(4), bins] = 30.0
    return logits.reshape(-1)


def test_decoder_reads_each_side_as_distance_in_strides_from_the_cell_centre() -> None:
    stride, side = 16, INPUT_SIDE // 16
    scores = np.zeros((side * side, NUM_CLASSES), dtype=np.float32)
    sides = np.zeros((side * side, 4 * (REG_MAX + 1)), dtype=np.float32)
    cell = 3 * side + 5  # row 3, column 5: centre (88, 56)
    scores[cell, 0] = 0.8
    sides[cell] = _peaked([2, 1, 3, 4])
    scores[cell + 1, 1] = 0.99  # a confident bicycle is no person
    boxes, found = decode_level(scores, sides, stride, min_score=0.3)
    np.testing.assert_allclose(boxes, [[88 - 32, 56 - 16, 88 + 48, 56 + 64]], atol=1e-6)
    np.testing.assert_allclose(found, [0.8], rtol=1e-6)
    # The distance is the distribution's expectation: half on 2, half on 4 strides reads as 3.
    logits = np.full((4, REG_MAX + 1), -30.0, dtype=np.float32)
    logits[:, 2] = logits[:, 4] = 5.0
    sides[cell] = logits.reshape(-1)
    boxes, _ = decode_level(scores, sides, stride, min_score=0.3)
    np.testing.assert_allclose(boxes, [[88 - 48, 56 - 48, 88 + 48, 56 + 48]], atol=1e-4)
    assert decode_level(scores, sides, stride, min_score=0.9)[0].shape == (0, 4)


def _vtest_frames(every: int) -> list[tuple[int, NDArray[np.uint8]]]:
    import cv2

    capture = cv2.VideoCapture(str(VIDEO))
    frames, seq = [], 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        if seq % every == 0:
            frames.append((seq, np.ascontiguousarray(image, dtype=np.uint8)))
        seq += 1
    capture.release()
    return frames


@needs_video
@pytest.mark.parametrize("model", ["int8", "float"])
def test_shipped_models_find_the_walkers_of_a_real_overview_camera(model: Literal["int8", "float"]) -> None:
    from gaitwatch.tools.cmd_eval_detect import read_mot_reference

    reference = read_mot_reference(REFERENCE, 0.5)
    detector = NanodetPersonDetector(NanodetSettings(min_score=0.45, model=model))
    assert detector.model_version.startswith("nanodet_416_int8@" if model == "int8" else "nanodet_416@")
    score = score_all((0.5,))[0.5]
    for seq, image in _vtest_frames(every=40):
        found = detector.detect(image)
        assert found.xyxy.shape[1] == 4 and np.all(found.xyxy[:, 2:] >= found.xyxy[:, :2])
        assert np.all((found.score >= 0.45) & (found.score <= 1.0))
        score.add(found.xyxy, reference.get(seq, np.zeros((0, 4))))
    # Measured 0.90 / 0.88 on every 10th frame (HOG: 0.82 / 0.68); a broken decoder or input scaling gets ~0.
    assert score.recall >= 0.85 and score.precision >= 0.8, (score.recall, score.precision)


@needs_video
def test_int8_build_finds_the_boxes_of_the_float_build_on_held_out_frames() -> None:
    """The last 30% of vtest.avi, never used for calibration: every float box (score >= 0.45) has an int8 box."""
    float_model = NanodetPersonDetector(NanodetSettings(min_score=0.45, model="float"))
    int8_model = NanodetPersonDetector(NanodetSettings(min_score=0.3))
    frames = [(seq, image) for seq, image in _vtest_frames(every=25) if seq >= 0.7 * 795]
    matched = []
    for _, image in frames:
        want, got = float_model.detect(image), int8_model.detect(image)
        if len(want):
            matched.append(iou_matrix(want.xyxy, got.xyxy).max(axis=1, initial=0.0) >= 0.7)
    assert len(matched) >= 8
    assert float(np.mean(np.concatenate(matched))) >= 0.95  # measured: 1.0 on every 3rd held-out frame


@needs_video
@pytest.mark.slow
def test_build_script_quantizes_the_float_model_to_the_shipped_int8_file_byte_for_byte(tmp_path: Path) -> None:
    from gaitwatch.tracking.nanodet import packaged_model_path

    out = tmp_path / "int8.onnx"
    assert (
        load_script("build_nanodet_onnx").main(["quantize", "--out", str(out), "--video-dir", str(VIDEO.parent)]) == 0
    )
    assert out.read_bytes() == packaged_model_path("int8").read_bytes()


def test_model_and_input_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(NanodetModelError, match=r"missing\.onnx"):
        NanodetPersonDetector(NanodetSettings(model_path=tmp_path / "missing.onnx"))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(NanodetModelError, match="cannot be loaded"):
        NanodetPersonDetector(NanodetSettings(model_path=garbage))
    detector = NanodetPersonDetector()
    with pytest.raises(ValueError, match="BGR uint8"):
        detector.detect(np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(ValueError, match="min_score"):
        NanodetSettings(min_score=1.5)
    with pytest.raises(ConfigError, match="model"):
        _settings(kind="nanodet", nanodet={"model": "fp16"})
    # A blank frame holds nobody.
    assert len(detector.detect(np.full((480, 640, 3), 127, dtype=np.uint8))) == 0
    # An admin's min_score 0 makes every cell a candidate (3549): suppression still sees at most MAX_CANDIDATES
    # (before the cap, one frame kept 1070 boxes and took 1.2 s).
    everything = NanodetPersonDetector(NanodetSettings(min_score=0.0))
    noise = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    assert 0 < len(everything.detect(noise)) <= MAX_CANDIDATES


class _FixedBoxes:
    """A detector reporting the same boxes for any image: the input of the union's merging rules."""

    def __init__(self, xyxy: list[list[float]], score: list[float]) -> None:
        self.found = Detections(np.asarray(xyxy, dtype=np.float64).reshape(-1, 4), np.asarray(score, dtype=np.float64))
        self.calls = 0

    def detect(self, image: NDArray[np.uint8]) -> Detections:
        self.calls += 1
        return self.found


def test_frame_wide_union_fuses_a_person_both_detectors_found_and_adds_the_ones_only_blazepose_found() -> None:
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    seated = [100.0, 100.0, 300.0, 400.0]
    seated_landmarks = [120.0, 90.0, 300.0, 380.0]  # BlazePose's box of the same person
    walker = [400.0, 100.0, 450.0, 230.0]
    lying = [350.0, 300.0, 600.0, 400.0]  # only BlazePose sees them
    nanodet = _FixedBoxes([seated, walker], [0.4, 0.8])
    blazepose = _FixedBoxes([seated_landmarks, lying], [0.9, 0.95])
    union = FrameWideUnion([nanodet], whole_frame_parts=[blazepose])
    assert isinstance(union, BetweenScansDetector)
    found = union.detect(image)
    # The seated person once: the score-weighted mean of both boxes, with the better score (both saw them).
    fused = (0.4 * np.array(seated) + 0.9 * np.array(seated_landmarks)) / 1.3
    order = np.argsort(found.xyxy[:, 0])
    np.testing.assert_allclose(found.xyxy[order], np.stack([fused, np.array(lying), np.array(walker)]))
    np.testing.assert_allclose(found.score[order], [0.9, 0.95, 0.8])
    # Between whole-frame scans only NanoDet runs, on the whole frame.
    between = union.detect_between_scans(image)
    np.testing.assert_array_equal(between.xyxy[np.argsort(between.xyxy[:, 0])], [seated, walker])
    assert (nanodet.calls, blazepose.calls) == (2, 1)


def test_frame_wide_union_lends_only_its_score_to_a_person_when_its_box_spans_two_people() -> None:
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    # vtest frame 556: one walker crossing in front of another; BlazePose's box holds both of NanoDet's people.
    behind, in_front = [167.0, 354.0, 216.0, 496.0], [198.0, 380.0, 271.0, 527.0]
    both = [167.0, 348.0, 264.0, 523.0]
    union = FrameWideUnion(
        [_FixedBoxes([behind, in_front], [0.78, 0.76])], whole_frame_parts=[_FixedBoxes([both], [1.0])]
    )
    found = union.detect(image)
    order = np.argsort(found.xyxy[:, 0])
    np.testing.assert_array_equal(found.xyxy[order], [behind, in_front])  # neither dragged towards the other
    np.testing.assert_allclose(found.score[order], [0.78, 1.0])
    # A close-up person with NanoDet part-boxes (a hand, a head) inside BlazePose's box: still one fused box.
    person, hand, head = [314.0, 334.0, 1324.0, 1061.0], [641.0, 321.0, 825.0, 544.0], [759.0, 279.0, 885.0, 433.0]
    landmarks = [295.0, 72.0, 1274.0, 943.0]
    union = FrameWideUnion(
        [_FixedBoxes([person, hand, head], [0.6, 0.43, 0.31])], whole_frame_parts=[_FixedBoxes([landmarks], [1.0])]
    )
    found = union.detect(np.zeros((1080, 1920, 3), dtype=np.uint8))
    fused = (0.6 * np.array(person) + 1.0 * np.array(landmarks)) / 1.6
    np.testing.assert_allclose(found.xyxy[np.argmax(found.score)], fused)


def test_nanodet_blazepose_runs_nanodet_on_every_detection_and_blazepose_on_whole_frame_scans() -> None:
    union = build_detector(_settings(kind="nanodet+blazepose"))
    assert isinstance(union, FrameWideUnion)
    assert [type(p) for p in union.parts] == [NanodetPersonDetector]
    (near,) = union.whole_frame_parts
    assert isinstance(near, LandmarkRefinedDetector)
    assert not union.fallback_parts
    assert search_region_settings(_settings(kind="nanodet+blazepose")).full_frame_interval_s > 0  # BlazePose's pace
    assert isinstance(build_detector(_settings(kind="nanodet")), NanodetPersonDetector)
    assert search_region_settings(_settings(kind="nanodet")).full_frame_interval_s == 0.0
    assert type(build_detector(_settings(kind="hog+blazepose"))) is UnionDetector
    with pytest.raises(ConfigError, match="blazepose_scans"):
        _settings(kind="nanodet+blazepose", blazepose_scans="all")


def test_tracker_score_thresholds_follow_the_detectors_score_scale_unless_set() -> None:
    nanodet = TRACKER_SCORES_BY_DETECTOR["nanodet+blazepose"]
    camera = {"cameras": [{"id": "c", "source": "v.mp4"}]}
    on_nanodet = parse_settings({**camera, "detector": {"kind": "nanodet+blazepose"}}).tracker
    assert (on_nanodet.high_score, on_nanodet.new_track_score) == (nanodet["high_score"], nanodet["new_track_score"])
    for kind in ("hog", "hog+blazepose"):
        hog = parse_settings({**camera, "detector": {"kind": kind}}).tracker
        assert (hog.high_score, hog.new_track_score) == (0.6, 0.75)
    default_kind = parse_settings({**camera, "detector": {"kind": "nanodet+blazepose"}}).tracker
    assert parse_settings(camera).tracker == default_kind
    own = parse_settings(
        {**camera, "detector": {"kind": "nanodet"}, "tracker": {"new_track_score": 0.7, "min_hits": 3}}
    ).tracker
    assert (own.high_score, own.new_track_score, own.min_hits) == (nanodet["high_score"], 0.7, 3)
    # A settings dump (SIGHUP reload, eval-detect's --detector) reads back unchanged.
    settings = parse_settings({**camera, "detector": {"kind": "nanodet"}})
    assert parse_settings(settings.model_dump()).tracker == settings.tracker


def test_build_script_translates_a_tfjs_graph_to_onnx_that_computes_the_same(tmp_path: Path) -> None:
    """A small TF.js graph in the layout of the shipped one (NHWC convolution on a transposed NCHW input, bias,
    LeakyReLU, max pool, half-pixel resize, concat, split, sigmoid, a reshape whose shape onnx_tf computed with
    SparseToDense), float16 weights: the ONNX model the build script writes computes what numpy computes."""
    import cv2
    import onnxruntime as ort

    rng = np.random.default_rng(3)
    weight = rng.normal(0, 0.5, (3, 3, 3, 4)).astype(np.float16)  # HWIO
    bias = rng.normal(0, 0.5, 4).astype(np.float16)
    consts: dict[str, tuple[NDArray[Any], str]] = {
        "nchw_to_nhwc": (np.array([0, 2, 3, 1], np.int32), "int32"),
        "w": (weight, "float16"),
        "b": (bias, "float16"),
        "size": (np.array([6, 6], np.int32), "int32"),
        "axis": (np.array(3, np.int32), "int32"),
        "split_sizes": (np.array([5, 3], np.int32), "int32"),
        "split_dim": (np.array(3, np.int32), "int32"),
        "where": (np.zeros((0, 1), np.int32), "int32"),
        "dense_shape": (np.array([3], np.int32), "int32"),
        "updates": (np.zeros(0, np.int32), "int32"),
        "zero": (np.array(0, np.int32), "int32"),
        "shape_base": (np.array([1, 36, 5], np.int32), "int32"),
    }

    def node(name: str, op: str, inputs: list[str], **attr: Any) -> dict[str, Any]:
        return {"name": name, "op": op, "input": inputs, "attr": attr}

    strides = {"list": {"i": ["1", "1", "1", "1"]}}
    valid = {"s": "VkFMSUQ="}
    nodes = [
        node("input_1", "Placeholder", [], shape={"shape": {"dim": [{"size": s} for s in ("1", "3", "8", "8")]}}),
        *(node(name, "Const", []) for name in consts),
        node("nhwc", "Transpose", ["input_1", "nchw_to_nhwc"]),
        node("conv", "Conv2D", ["nhwc", "w"], strides=strides, padding=valid, dilations=strides),
        node("biased", "Add", ["conv", "b"]),
        node("act", "LeakyRelu", ["biased"], alpha={"f": 0.1}),
        node("pool", "MaxPool", ["act"], ksize={"list": {"i": ["1", "2", "2", "1"]}}, strides=strides, padding=valid),
        node("up", "ResizeBilinear", ["pool", "size"], half_pixel_centers={"b": True}, align_corners={"b": False}),
        node("cat", "ConcatV2", ["up", "up_again", "axis"]),
        node("up_again", "Identity", ["up"]),
        node("split", "SplitV", ["cat", "split_sizes", "split_dim"], num_split={"i": "2"}),
        node("probs", "Sigmoid", ["split"]),
        node("dense", "SparseToDense", ["where", "dense_shape", "updates", "zero"]),
        node("shape", "AddV2", ["shape_base", "dense"]),
        node("flat", "Reshape", ["probs", "shape"]),
        node("Identity", "Identity", ["flat"]),
        node("Identity_1", "Identity", ["split:1"]),
    ]
    blob = b"".join(value.tobytes() for value, _ in consts.values())
    manifest = [
        {
            "name": name,
            "shape": list(value.shape),
            "dtype": "float32" if kind == "float16" else kind,
            **({"quantization": {"dtype": "float16", "original_dtype": "float32"}} if kind == "float16" else {}),
        }
        for name, (value, kind) in consts.items()
    ]
    graph: dict[str, Any] = {
        "modelTopology": {"node": nodes},
        "weightsManifest": [{"paths": ["g.bin"], "weights": manifest}],
        "signature": {
            "outputs": {
                "Identity:0": {"tensorShape": {"dim": [{"size": "1"}, {"size": "36"}, {"size": "5"}]}},
                "Identity_1:0": {"tensorShape": {"dim": [{"size": s} for s in ("1", "6", "6", "3")]}},
            }
        },
    }
    (tmp_path / "g.json").write_text(json.dumps(graph))
    (tmp_path / "g.bin").write_bytes(blob)
    script = load_script("build_nanodet_onnx")
    out = tmp_path / "g.onnx"
    assert script.main(["translate", str(tmp_path / "g.json"), "--out", str(out)]) == 0
    assert out.read_bytes() == script.build(tmp_path / "g.json").SerializeToString()  # deterministic

    x = rng.normal(0, 1, (1, 3, 8, 8)).astype(np.float32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got_probs, got_rest = session.run(["Identity", "Identity_1"], {"input_1": x})
    # numpy: the same computation in NHWC
    image = x.transpose(0, 2, 3, 1)[0]
    w, b = weight.astype(np.float32), bias.astype(np.float32)
    conv = np.zeros((6, 6, 4), np.float32)
    for i in range(6):
        for j in range(6):
            conv[i, j] = np.einsum("hwc,hwco->o", image[i : i + 3, j : j + 3], w)
    act = np.where(conv + b > 0, conv + b, 0.1 * (conv + b))
    pool = np.max(np.stack([act[di : di + 5, dj : dj + 5] for di in (0, 1) for dj in (0, 1)]), axis=0)
    up = np.asarray(cv2.resize(pool, (6, 6), interpolation=cv2.INTER_LINEAR))  # half-pixel centres, like TF
    cat = np.concatenate([up, up], axis=2)
    np.testing.assert_allclose(got_probs, (1 / (1 + np.exp(-cat[..., :5]))).reshape(1, 36, 5), atol=1e-5)
    np.testing.assert_allclose(got_rest, cat[None, ..., 5:], atol=1e-5)
    # Something the script does not translate is refused by name.
    graph["modelTopology"]["node"] += [node("erf", "Erf", ["flat"]), node("Identity_2", "Identity", ["erf"])]
    (tmp_path / "g.json").write_text(json.dumps(graph))
    assert script.main(["translate", str(tmp_path / "g.json"), "--out", str(tmp_path / "bad.onnx")]) == 1
