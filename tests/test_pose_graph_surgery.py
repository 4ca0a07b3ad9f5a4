"""Graph surgery on the landmark models: dropping the outputs gaitwatch never reads loses no landmark, and the
pose backend runs the shipped float models pruned."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from numpy.typing import NDArray

from gaitwatch.pose.blazepose import BlazePoseBackend, BlazePoseSettings, ModelVariant, packaged_model_path
from gaitwatch.pose.graph_surgery import LANDMARK_OUTPUTS, GraphSurgeryError, output_names, pruned_float_model
from gaitwatch.pose.roi import extract_crop, roi_from_box

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "video"
VIDEO = SHARED / "vtest.avi"
DETS = SHARED / "vtest_PETS09-S2L1_det.txt"


@pytest.fixture(scope="module")
def walker() -> tuple[NDArray[np.uint8], NDArray[np.float64]]:
    """A frame of vtest.avi and the detector box of one clearly seen walker in it."""
    if not (VIDEO.is_file() and DETS.is_file()):
        pytest.skip(f"real-person footage not found at {VIDEO} (the shared data folder sits beside the repository)")
    det = np.loadtxt(DETS, delimiter=",")
    cap = cv2.VideoCapture(str(VIDEO))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 600)
    ok, frame = cap.read()
    cap.release()
    assert ok
    row = det[(det[:, 0] == 601) & (det[:, 6] > 0.9)][0]  # det frame numbers are 1-based
    x, y, w, h = row[2:6]
    return np.asarray(frame, dtype=np.uint8), np.array([x, y, x + w, y + h], dtype=np.float64)


def _outputs(blob: bytes, crop_rgb: NDArray[np.float32]) -> dict[str, NDArray[np.float32]]:
    interp = Interpreter(model_content=blob, num_threads=1)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], crop_rgb)
    interp.invoke()
    return {str(d["name"]): interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()}


@pytest.mark.parametrize("model", ["full", "lite"])
def test_pruned_graph_gives_the_same_landmarks_and_the_backend_runs_it(
    model: ModelVariant, walker: tuple[NDArray[np.uint8], NDArray[np.float64]]
) -> None:
    frame, box = walker
    shipped = packaged_model_path(model).read_bytes()
    pruned = pruned_float_model(shipped)
    assert {"Identity_2", "Identity_3"} <= set(output_names(shipped))  # segmentation mask and heatmap
    assert output_names(pruned) == LANDMARK_OUTPUTS

    roi = roi_from_box(box)
    x = cv2.cvtColor(extract_crop(frame, roi), cv2.COLOR_BGR2RGB)[None].astype(np.float32) / 255.0
    original, kept = _outputs(shipped, x), _outputs(pruned, x)
    assert float(kept["Identity_1"].reshape(-1)[0]) > 0.5  # a real person's crop
    for name in LANDMARK_OUTPUTS:
        np.testing.assert_array_equal(kept[name], original[name])

    backend = BlazePoseBackend(BlazePoseSettings(model=model, num_threads=1))
    assert backend.pruned
    assert backend.model_version.startswith(f"pose_landmark_{model}@")  # named after the file as shipped
    # What the backend computes is the pruned graph's landmarks: its output for the crop is the raw output mapped.
    landmarks = backend.run_roi(frame, roi)
    raw = original["Identity"].reshape(-1, 5)[: landmarks.keypoints.shape[0]]
    assert landmarks.presence == pytest.approx(float(original["Identity_1"].reshape(-1)[0]))
    assert np.corrcoef(landmarks.keypoints[:, 0], raw[:, 0])[0, 1] > 0.999


def test_int8_model_is_already_pruned_and_runs_as_shipped() -> None:
    assert output_names(packaged_model_path("full-int8").read_bytes()) == LANDMARK_OUTPUTS
    assert not BlazePoseBackend(BlazePoseSettings(model="full-int8", num_threads=1)).pruned


def test_asking_for_an_output_the_model_lacks_is_refused() -> None:
    int8 = packaged_model_path("full-int8").read_bytes()
    with pytest.raises(GraphSurgeryError, match="Identity_2"):
        pruned_float_model(int8, ("Identity", "Identity_2"))
