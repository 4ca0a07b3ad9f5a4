"""The ``student`` pose backend: a distilled student network (``student.py``, ``distill.py``) on crops.

A student directory, as ``gaitwatch distill`` writes it, holds ``student.json`` (metadata: keypoints, input
size, crop geometry, teacher, training data, validation figures) and the model file it names: ``student.onnx``
run with onnxruntime (no torch needed), or ``student.pt`` (a torch state dict, the fallback when ONNX export
was impossible) run with torch.

Unlike BlazePose (batch size fixed at 1), the student takes every tracked person of a frame in one batch.
It predicts the gait keypoints (COCO-17 body joints, heels and toes); the other BlazePose landmarks (hand and
extra face points) are filled with their nearest predicted neighbour and visibility 0. It knows upright
people only (it learnt from the site's walking people): there are no turned hypotheses for people lying down.

One :class:`StudentBackend` owns one inference session and is not thread-safe: one per inference thread.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from gaitwatch.pose.keypoints import NUM_LANDMARKS
from gaitwatch.pose.student import (
    TORCH_INSTALL_HINT,
    StudentOutput,
    StudentSpec,
    StudentUnavailableError,
    crop_matrix,
    decode_outputs,
    invert_affine,
    landmark_fill_index,
    require_torch,
    to_input_tensor,
    warp_crop,
)
from gaitwatch.pose.types import Poses

METADATA_FILE = "student.json"
METADATA_FORMAT = "gaitwatch-pose-student/1"
ONNX_INPUT = "image"
ONNX_OUTPUTS = ("heatmaps", "aux")

Runtime = Literal["auto", "onnxruntime", "torch"]


class StudentModelError(RuntimeError):
    """The student directory is missing, incomplete, or its model cannot be run here."""


@dataclass(frozen=True, slots=True)
class StudentSettings:
    """Knobs of the student backend.

    ``model_dir``: the directory ``gaitwatch distill --out`` wrote (``student.json`` + model file).
    ``num_threads``: inference threads. One thread keeps the other core for the camera readers and the
    tracker on a 2-core ward PC; batches of several people gain little from a second thread at this size.
    ``max_batch``: crops per inference call; larger batches amortise per-call overhead, memory grows linearly
    (about 0.2 MB per crop at 128 x 96).
    ``runtime``: "auto" uses onnxruntime for an .onnx model and torch for a .pt one; naming one forces it.
    """

    model_dir: Path
    num_threads: int = 1
    max_batch: int = 16
    runtime: Runtime = "auto"

    def __post_init__(self) -> None:
        if self.num_threads < 1:
            raise ValueError(f"StudentSettings.num_threads must be >= 1; got {self.num_threads}")
        if self.max_batch < 1:
            raise ValueError(f"StudentSettings.max_batch must be >= 1; got {self.max_batch}")
        if self.runtime not in ("auto", "onnxruntime", "torch"):
            raise ValueError(f"StudentSettings.runtime must be auto, onnxruntime or torch; got {self.runtime!r}")


@dataclass(frozen=True, slots=True)
class StudentMetadata:
    """What ``student.json`` says: the network's spec, its model file and format, and everything else raw."""

    spec: StudentSpec
    model_path: Path
    model_format: Literal["onnx", "torch"]
    raw: dict[str, Any]


def load_metadata(model_dir: Path) -> StudentMetadata:
    """Read and check ``model_dir/student.json``; raises :class:`StudentModelError` naming what is wrong."""
    path = Path(model_dir) / METADATA_FILE
    hint = "run `gaitwatch distill VIDEO... --out DIR` to make one, and point the student backend at DIR"
    if not path.is_file():
        raise StudentModelError(f"no pose student at {model_dir}: {path} not found; {hint}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise StudentModelError(f"cannot read {path}: {exc}; {hint}") from exc
    if not isinstance(raw, dict) or raw.get("format") != METADATA_FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise StudentModelError(f"{path} is not a {METADATA_FORMAT} file (format {found!r}); {hint}")
    try:
        spec = StudentSpec.from_dict(raw["spec"])
        model_path = Path(model_dir) / str(raw["model"]["file"])
        model_format = str(raw["model"]["format"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StudentModelError(f"{path} is incomplete or invalid: {exc}") from exc
    if model_format not in ("onnx", "torch"):
        raise StudentModelError(f"{path}: unknown model format {model_format!r} (expected onnx or torch)")
    if not model_path.is_file():
        raise StudentModelError(f"{path} names the model file {model_path}, which does not exist; {hint}")
    return StudentMetadata(spec, model_path, "onnx" if model_format == "onnx" else "torch", raw)


# Runs a (N, 3, H, W) float32 batch through the network: (heatmaps, aux).
_Runner = Callable[[NDArray[np.float32]], tuple[NDArray[np.float32], NDArray[np.float32]]]


def _onnx_runner(path: Path, threads: int) -> _Runner:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise StudentModelError(
            f"the student model {path} is ONNX and needs onnxruntime (`pip install onnxruntime`, the "
            f"gaitwatch[onnx] extra), or run it with torch ({TORCH_INSTALL_HINT}, runtime = 'torch')"
        ) from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle worker threads must not spin on a shared 2-core PC: they would steal the camera readers' core.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
        raise StudentModelError(f"onnxruntime cannot load the student model {path}: {exc}") from exc

    def run(batch: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        heatmaps, aux = session.run(list(ONNX_OUTPUTS), {ONNX_INPUT: batch})
        return np.asarray(heatmaps, dtype=np.float32), np.asarray(aux, dtype=np.float32)

    return run


def _torch_runner(path: Path, spec: StudentSpec, threads: int) -> _Runner:
    try:
        torch = require_torch()
    except StudentUnavailableError as exc:
        raise StudentModelError(str(exc)) from exc
    from gaitwatch.pose.student import build_student_net

    net = build_student_net(spec)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except (OSError, RuntimeError, KeyError) as exc:
        raise StudentModelError(f"torch cannot load the student weights {path}: {exc}") from exc
    net.eval()
    # torch's thread count is per process; the daemon's single inference thread owns it.
    torch.set_num_threads(threads)

    def run(batch: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        with torch.inference_mode():
            heatmaps, aux = net(torch.from_numpy(batch))
        return heatmaps.numpy(), aux.numpy()

    return run


class StudentBackend:
    """A distilled student behind the ``PoseBackend`` protocol, batched across the boxes of one frame."""

    def __init__(self, settings: StudentSettings) -> None:
        self.settings = settings
        self.metadata = load_metadata(settings.model_dir)
        self.spec = self.metadata.spec
        path = self.metadata.model_path
        runtime = settings.runtime
        if runtime == "auto":
            runtime = "onnxruntime" if self.metadata.model_format == "onnx" else "torch"
        if runtime == "onnxruntime" and self.metadata.model_format != "onnx":
            raise StudentModelError(f"runtime onnxruntime needs an ONNX model; {path} is a torch state dict")
        self.runtime: Runtime = runtime
        if runtime == "onnxruntime":
            self._run = _onnx_runner(path, settings.num_threads)
        else:
            weights = path
            if self.metadata.model_format == "onnx":
                # Forcing torch on an ONNX student needs the state dict export writes beside it.
                weights = path.with_suffix(".pt")
                if not weights.is_file():
                    raise StudentModelError(f"runtime torch needs {weights} (the student's torch weights)")
            self._run = _torch_runner(weights, self.spec, settings.num_threads)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        self._model_version = f"{path.stem}@{digest}"
        self._fill_rows, self._predicted = landmark_fill_index(self.spec.landmarks)

    @property
    def name(self) -> str:
        return "student"

    @property
    def model_version(self) -> str:
        return self._model_version

    def run_crops(self, crops: NDArray[np.uint8]) -> StudentOutput:
        """The student on ready-cut crops (N, H, W, 3) BGR uint8 of the spec's size; keypoints in crop px."""
        s = self.spec
        if crops.ndim != 4 or crops.shape[1:] != (s.input_height, s.input_width, 3) or crops.dtype != np.uint8:
            raise ValueError(
                f"run_crops expects uint8 crops (N, {s.input_height}, {s.input_width}, 3); "
                f"got {crops.dtype} {crops.shape}"
            )
        parts: list[StudentOutput] = []
        for start in range(0, crops.shape[0], self.settings.max_batch):
            heatmaps, aux = self._run(to_input_tensor(crops[start : start + self.settings.max_batch]))
            parts.append(decode_outputs(heatmaps, aux, s))
        if not parts:
            k = s.num_keypoints
            return StudentOutput(
                np.zeros((0, k, 2)),
                np.zeros((0, k), np.float32),
                np.zeros(0, np.float32),
                np.zeros((0, k, 3), np.float32),
            )
        return StudentOutput(
            keypoints=np.concatenate([p.keypoints for p in parts]),
            visibility=np.concatenate([p.visibility for p in parts]),
            presence=np.concatenate([p.presence for p in parts]),
            world=np.concatenate([p.world for p in parts]),
        )

    def estimate(self, image: NDArray[np.uint8], track_ids: NDArray[np.int64], xyxy: NDArray[np.float64]) -> Poses:
        """See ``PoseBackend.estimate``: one row per box, in input order, all boxes in one batch."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"estimate expects a uint8 HxWx3 BGR image; got {image.dtype} {image.shape}")
        n = int(track_ids.shape[0])
        if track_ids.shape != (n,) or xyxy.shape != (n, 4):
            raise ValueError(f"estimate expects track_ids (N,) and xyxy (N, 4); got {track_ids.shape} and {xyxy.shape}")
        if n == 0:
            return Poses.empty()
        s = self.spec
        boxes = np.asarray(xyxy, dtype=np.float64)
        if not np.all(np.isfinite(boxes)):
            raise ValueError("estimate expects finite boxes")
        matrices = [crop_matrix(box, s) for box in boxes]
        crops = np.stack([warp_crop(image, m, s.input_width, s.input_height) for m in matrices])
        out = self.run_crops(crops)
        keypoints = np.empty((n, NUM_LANDMARKS, 3), dtype=np.float32)
        for i, m in enumerate(matrices):
            back = invert_affine(m)
            xy = out.keypoints[i] @ back[:, :2].T + back[:, 2]
            keypoints[i, :, :2] = xy[self._fill_rows]
        keypoints[:, :, 2] = np.where(self._predicted, out.visibility[:, self._fill_rows], 0.0)
        world = np.ascontiguousarray(out.world[:, self._fill_rows], dtype=np.float32)
        return Poses(np.asarray(track_ids, dtype=np.int64).copy(), keypoints, world, out.presence.copy())
