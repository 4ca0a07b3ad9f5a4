"""The ONNX person-detector backend, run by onnxruntime on tiny models the tests build with onnx.helper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx package (dev extra) builds the test models")
pytest.importorskip("onnxruntime", reason="the ONNX backend needs onnxruntime (pip install 'gaitwatch[onnx]')")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from gaitwatch.tracking.onnx_detector import OnnxDetectorSettings, OnnxPersonDetector  # noqa: E402

# Candidate rows in model-input pixels of a 320x320 letterboxed input: x1, y1, x2, y2, score, class.
ROWS = np.array(
    [
        [100.0, 80.0, 140.0, 200.0, 0.0, 0.0],  # person; its score is computed from the image (see below)
        [200.0, 60.0, 240.0, 160.0, 0.9, 0.0],  # person
        [202.0, 62.0, 242.0, 162.0, 0.6, 0.0],  # duplicate of the previous one: NMS removes it
        [10.0, 120.0, 60.0, 170.0, 0.95, 2.0],  # a car: wrong class
        [250.0, 250.0, 300.0, 300.0, 0.1, 0.0],  # person below min_score
    ],
    dtype=np.float32,
)


def build_model(path: Path, in_shape: list[int | str], out_rows: np.ndarray = ROWS) -> Path:
    """A graph ``dets = ROWS + MASK * max(input[:, 0])``: row 0's score is the largest value of channel 0.

    Channel 0 must be red scaled to [0, 1], so a frame containing pure red BGR (0, 0, 255) gives row 0 a score
    of exactly 1.0, while BGR order or unscaled input would give the grey padding (0.447) or 255.
    """
    mask = np.zeros_like(out_rows)
    mask[0, 4] = 1.0
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, in_shape)
    dets = helper.make_tensor_value_info("dets", TensorProto.FLOAT, [1, out_rows.shape[0], out_rows.shape[1]])
    inits = [
        numpy_helper.from_array(out_rows[None], "rows"),
        numpy_helper.from_array(mask[None], "mask"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "c0"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "c1"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
    ]
    nodes = [
        helper.make_node("Slice", ["images", "c0", "c1", "axis1"], ["red"]),
        helper.make_node("ReduceMax", ["red"], ["red_max"], keepdims=0),
        helper.make_node("Mul", ["mask", "red_max"], ["score"]),
        helper.make_node("Add", ["rows", "score"], ["dets"]),
    ]
    graph = helper.make_graph(nodes, "tiny_person_detector", [image], [dets], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def red_frame() -> np.ndarray:
    frame = np.zeros((480, 640, 3), dtype=np.uint8)
    frame[100:120, 100:120] = (0, 0, 255)  # BGR pure red
    return frame


def test_boxes_come_back_in_frame_pixels_through_the_letterbox(tmp_path: Path) -> None:
    model = build_model(tmp_path / "tiny.onnx", [1, 3, 320, 320])
    detector = OnnxPersonDetector(OnnxDetectorSettings(model_path=model, min_score=0.3))
    assert detector.input_size == (320, 320)
    found = detector.detect(red_frame())
    # 640x480 -> scale 0.5 -> 320x240 centred vertically: pad_y = 40. frame = (input - pad) / 0.5
    expected = np.array([[200.0, 80.0, 280.0, 320.0], [400.0, 40.0, 480.0, 240.0]])
    order = np.argsort(found.xyxy[:, 0])
    np.testing.assert_allclose(found.xyxy[order], expected, atol=1e-3)
    np.testing.assert_allclose(found.score[order], [1.0, 0.9], atol=1e-6)


def test_input_is_rgb_scaled_to_unit_range(tmp_path: Path) -> None:
    model = build_model(tmp_path / "tiny.onnx", [1, 3, 320, 320])
    detector = OnnxPersonDetector(OnnxDetectorSettings(model_path=model, min_score=0.3))
    frame = red_frame()
    frame[100:120, 100:120] = (255, 0, 0)  # pure blue: channel 0 (red) holds only the grey padding
    found = detector.detect(frame)
    order = np.argsort(found.xyxy[:, 0])
    # Row 0 now scores the brightest red value: the grey letterbox padding, 114/255 - not 1.0, not 255.
    np.testing.assert_allclose(found.score[order], [114 / 255, 0.9], atol=1e-6)


def test_person_class_setting_selects_the_class(tmp_path: Path) -> None:
    model = build_model(tmp_path / "tiny.onnx", [1, 3, 320, 320])
    detector = OnnxPersonDetector(OnnxDetectorSettings(model_path=model, person_class=2))
    found = detector.detect(red_frame())
    np.testing.assert_allclose(found.xyxy, [[20.0, 160.0, 120.0, 260.0]], atol=1e-3)


def test_symbolic_input_needs_input_size(tmp_path: Path) -> None:
    model = build_model(tmp_path / "dyn.onnx", [1, 3, "height", "width"])
    with pytest.raises(ValueError, match="input_size"):
        OnnxPersonDetector(OnnxDetectorSettings(model_path=model))
    detector = OnnxPersonDetector(OnnxDetectorSettings(model_path=model, input_size=(320, 320)))
    assert len(detector.detect(red_frame())) == 2


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "model.onnx"
    with pytest.raises(FileNotFoundError, match=str(path)):
        OnnxPersonDetector(OnnxDetectorSettings(model_path=path))


def test_invalid_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"this is not a protobuf")
    with pytest.raises(ValueError, match=r"garbage\.onnx"):
        OnnxPersonDetector(OnnxDetectorSettings(model_path=path))


def test_wrong_layout_is_rejected_with_what_was_expected(tmp_path: Path) -> None:
    path = build_model(tmp_path / "wide.onnx", [1, 3, 320, 320], out_rows=np.zeros((4, 7), dtype=np.float32))
    with pytest.raises(ValueError, match=r"wide\.onnx.*\(1, N, 6\)"):
        OnnxPersonDetector(OnnxDetectorSettings(model_path=path))
    gray = build_model(tmp_path / "gray.onnx", [1, 1, 320, 320])
    with pytest.raises(ValueError, match=r"gray\.onnx.*\(1, 3, H, W\)"):
        OnnxPersonDetector(OnnxDetectorSettings(model_path=gray))
