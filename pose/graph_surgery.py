"""Lossless surgery on a BlazePose GHUM landmark model's flatbuffer: keep only the outputs gaitwatch reads.

The landmark models as MediaPipe ships them also compute a 256x256 segmentation mask and a 64x64x39 heatmap,
which gaitwatch never reads: measured on one core (``bench/pose_speed.py``), they are about 40% of the full
model's time and more than half of the lite model's. ``pruned_float_model`` drops every op that only feeds
them and expands the float16 weights to the float32 values their DEQUANTIZE ops would produce, so the pruned
graph gives bit-identical landmarks, presence and world landmarks. The pose backend runs every landmark model
pruned (in memory; the shipped files stay as MediaPipe published them), and ``scripts/build_pose_int8.py``
quantizes the pruned graph. Only numpy, flatbuffers and ai_edge_litert's schema: the build script loads this
file by path in its quantizer venv, where gaitwatch is not installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# The outputs gaitwatch reads: landmarks, presence flag, world landmarks (see gaitwatch.pose.blazepose).
LANDMARK_OUTPUTS = ("Identity", "Identity_1", "Identity_4")
# The signature the pruned model carries (the quantizer calibrates through it).
SIGNATURE = "serving_default"


class GraphSurgeryError(ValueError):
    """The model is not a single graph holding the outputs asked for."""


def output_names(source: bytes) -> tuple[str, ...]:
    """Names of the model's outputs, in order."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(source, 0)
    if model.SubgraphsLength() != 1:
        raise GraphSurgeryError(f"the model has {model.SubgraphsLength()} subgraphs; expected one")
    graph = model.Subgraphs(0)
    return tuple(graph.Tensors(graph.Outputs(i)).Name().decode() for i in range(graph.OutputsLength()))


def _opcode(model: Any, op: Any) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return int(max(code.builtinCode, code.deprecatedBuiltinCode))


def pruned_float_model(source: bytes, outputs: tuple[str, ...] = LANDMARK_OUTPUTS) -> bytes:
    """The model with float32 weights, only the ``outputs`` named, and a ``serving_default`` signature.

    Raises ``GraphSurgeryError`` when the model is not one graph holding those outputs.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(source, 0))
    if len(model.subgraphs or []) != 1:
        raise GraphSurgeryError(f"the model has {len(model.subgraphs or [])} subgraphs; expected one")
    graph = model.subgraphs[0]
    _expand_float16_weights(model, graph, schema)
    _prune_outputs(graph, outputs)
    _drop_unused_tensors(model, graph)
    signature = schema.SignatureDefT()
    signature.signatureKey = SIGNATURE
    signature.subgraphIndex = 0
    signature.inputs = [_tensor_map(graph, t, schema) for t in graph.inputs]
    signature.outputs = [_tensor_map(graph, t, schema) for t in graph.outputs]
    model.signatureDefs = [signature]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _tensor_map(graph: Any, tensor: int, schema: Any) -> Any:
    entry = schema.TensorMapT()
    entry.name = graph.tensors[tensor].name
    entry.tensorIndex = int(tensor)
    return entry


def _expand_float16_weights(model: Any, graph: Any, schema: Any) -> None:
    # The quantizer calibrates and quantizes float32 constants; float16 constants behind DEQUANTIZE ops are
    # turned into the float32 constants the DEQUANTIZE would have produced (exact: float16 -> float32).
    kept = []
    for op in graph.operators:
        if _opcode(model, op) == schema.BuiltinOperator.DEQUANTIZE:
            src = graph.tensors[op.inputs[0]]
            data = model.buffers[src.buffer].data
            if src.type == schema.TensorType.FLOAT16 and data is not None and len(data):
                values = np.frombuffer(np.asarray(data, dtype=np.uint8).tobytes(), dtype=np.float16)
                buffer = schema.BufferT()
                buffer.data = np.frombuffer(values.astype(np.float32).tobytes(), dtype=np.uint8)
                model.buffers.append(buffer)
                graph.tensors[op.outputs[0]].buffer = len(model.buffers) - 1
                continue
        kept.append(op)
    graph.operators = kept


def _prune_outputs(graph: Any, names: tuple[str, ...]) -> None:
    by_name = {graph.tensors[t].name.decode(): int(t) for t in graph.outputs}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise GraphSurgeryError(f"the model lacks outputs {missing} (has {sorted(by_name)}); is it BlazePose GHUM?")
    graph.outputs = np.array([by_name[n] for n in names], dtype=np.int32)
    producer = {int(t): i for i, op in enumerate(graph.operators) for t in op.outputs}
    needed: set[int] = set()
    stack = [int(t) for t in graph.outputs]
    while stack:
        tensor = stack.pop()
        op_index = producer.get(tensor)
        if op_index is not None and op_index not in needed:
            needed.add(op_index)
            stack.extend(int(t) for t in graph.operators[op_index].inputs if t >= 0)
    graph.operators = [op for i, op in enumerate(graph.operators) if i in needed]


def _drop_unused_tensors(model: Any, graph: Any) -> None:
    used = {int(t) for t in graph.inputs} | {int(t) for t in graph.outputs}
    for op in graph.operators:
        used |= {int(t) for t in op.inputs if t >= 0} | {int(t) for t in op.outputs}
    order = sorted(used)
    new_index = {old: new for new, old in enumerate(order)}

    def remap(indices: Any) -> Any:
        return np.array([new_index[int(t)] if t >= 0 else -1 for t in indices], dtype=np.int32)

    graph.tensors = [graph.tensors[i] for i in order]
    graph.inputs = remap(graph.inputs)
    graph.outputs = remap(graph.outputs)
    for op in graph.operators:
        op.inputs = remap(op.inputs)
        op.outputs = remap(op.outputs)
    # Buffer 0 is the format's empty sentinel; metadata buffers stay.
    metadata = list(model.metadata or [])
    kept_buffers = sorted({0} | {t.buffer for t in graph.tensors} | {m.buffer for m in metadata})
    new_buffer = {old: new for new, old in enumerate(kept_buffers)}
    model.buffers = [model.buffers[i] for i in kept_buffers]
    for tensor in graph.tensors:
        tensor.buffer = new_buffer[tensor.buffer]
    for entry in metadata:
        entry.buffer = new_buffer[entry.buffer]
    if model.metadataBuffer is not None and len(model.metadataBuffer):
        model.metadataBuffer = np.array(
            [new_buffer[int(b)] for b in model.metadataBuffer if int(b) in new_buffer], dtype=np.int32
        )
