"""The router graph computed with numpy, from the weights read out of the shipped ONNX file.

On the request path ``onnxruntime``'s ``session.run`` on this graph costs ~100 µs per prompt on
this machine (31 µs in a tight loop: between two requests its code and data leave the CPU
caches), while the arithmetic is one embedding lookup, a sum and a 262-long dot product.
``DirectGraph.load`` reads the graph's nodes and initializers straight from the file (a minimal
reader of ONNX's protobuf wire format: no ``onnx`` package at run time) and is used only when the
nodes are exactly the ones ``train.export_onnx`` writes (``onnx_router`` module docstring), with
either head::

    rows = float32(table[ids]); pooled = sum(rows, 0) / max(n, 1)
    v = pooled / sqrt(sum(pooled * pooled) + eps); x = concat(v, dense)
    z = clip((x - mean) / std, lo, hi)
    score = sigmoid(z @ w + b)                      (linear head, EXPECTED_NODES)
    score = sigmoid(relu(z @ w1 + b1) @ w + b)      (hidden layer, EXPECTED_NODES_MLP)

Any other graph (a retrained one with other nodes, names or attributes) gives ``None`` and the
scorer keeps ``session.run``; ``OnnxScorer`` also compares both on probe prompts at load and keeps
``session.run`` when they differ by more than ``MAX_DIFF``. The table is held as float32 (the
graph's float16 table converted once: +33 MB resident; converting the rows of every prompt
instead costs more than ``session.run`` for prompts of a few hundred tokens).

ONNX wire format (``onnx/onnx.proto``, field numbers): ModelProto.graph 7; GraphProto.node 1,
initializer 5; NodeProto.input 1, output 2, op_type 4, attribute 5; AttributeProto.name 1, i 3;
TensorProto.dims 1, data_type 2, float_data 4, int64_data 7, name 8, raw_data 9.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

#: Largest |score difference| to ``session.run`` accepted at load (float32 summation order).
MAX_DIFF = 1e-5

#: The graph ``train.export_onnx`` writes: (op_type, inputs, outputs, integer attributes).
EXPECTED_NODES: tuple[tuple[str, tuple[str, ...], tuple[str, ...], tuple[tuple[str, Any], ...]], ...] = (
    ("Gather", ("table", "ids"), ("rows16",), (("axis", 0),)),
    ("Cast", ("rows16",), ("rows",), (("to", 1),)),
    ("ReduceSum", ("rows", "axis0"), ("total",), (("keepdims", 1),)),
    ("Shape", ("ids",), ("n_i",), ()),
    ("Cast", ("n_i",), ("n_f",), (("to", 1),)),
    ("Max", ("n_f", "one"), ("n_c",), ()),
    ("Div", ("total", "n_c"), ("pooled",), ()),
    ("Mul", ("pooled", "pooled"), ("sq",), ()),
    ("ReduceSum", ("sq", "axis1"), ("ss",), (("keepdims", 1),)),
    ("Add", ("ss", "eps"), ("ss_e",), ()),
    ("Sqrt", ("ss_e",), ("norm",), ()),
    ("Div", ("pooled", "norm"), ("v",), ()),
    ("Concat", ("v", "dense"), ("x",), (("axis", 1),)),
    ("Sub", ("x", "mean"), ("xc",), ()),
    ("Div", ("xc", "std"), ("zu",), ()),
    ("Clip", ("zu", "lo", "hi"), ("z",), ()),
    ("MatMul", ("z", "w"), ("zw",), ()),
    ("Reshape", ("zw", "shape1"), ("zw1",), ()),
    ("Add", ("zw1", "b"), ("logit",), ()),
    ("Sigmoid", ("logit",), ("score",), ()),
)
#: The same graph with the hidden layer (``train.export_onnx`` of an MLP head): ``h = relu(z @ w1 + b1)``
#: before the output ``MatMul``.
EXPECTED_NODES_MLP = EXPECTED_NODES[:16] + (
    ("MatMul", ("z", "w1"), ("h1",), ()),
    ("Add", ("h1", "b1"), ("h1b",), ()),
    ("Relu", ("h1b",), ("h",), ()),
    ("MatMul", ("h", "w"), ("zw",), ()),
) + EXPECTED_NODES[17:]

#: ONNX TensorProto.DataType -> numpy dtype (the types the router graph uses), little-endian.
_DTYPES = {1: "<f4", 7: "<i8", 10: "<f2", 11: "<f8"}


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def _fields(buf: memoryview) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of one protobuf message: ints for varints, memoryviews
    for length-delimited fields, raw bytes for fixed32/64. Raises ``ValueError`` on other types."""
    out: list[tuple[int, int, Any]] = []
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 2:
            ln, i = _varint(buf, i)
            v, i = buf[i:i + ln], i + ln
        elif wt == 5:
            v, i = bytes(buf[i:i + 4]), i + 4
        elif wt == 1:
            v, i = bytes(buf[i:i + 8]), i + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wt}")
        out.append((num, wt, v))
    if i != n:
        raise ValueError("truncated protobuf message")
    return out


def _ints(v: Any) -> list[int]:
    """A repeated int64 field's values (two's complement): one varint, or a packed run of them."""
    if isinstance(v, int):
        return [v - (1 << 64) if v >= 1 << 63 else v]
    out, i = [], 0
    while i < len(v):
        x, i = _varint(v, i)
        out.append(x - (1 << 64) if x >= 1 << 63 else x)
    return out


def _tensor(buf: memoryview) -> tuple[str, np.ndarray]:
    dims: list[int] = []
    dtype, name, raw = 0, "", None
    floats: list[float] = []
    ints: list[int] = []
    for num, wt, v in _fields(buf):
        if num == 1:
            dims += _ints(v)
        elif num == 2:
            dtype = v
        elif num == 8:
            name = bytes(v).decode()
        elif num == 9:
            raw = v
        elif num == 4:
            floats += np.frombuffer(bytes(v) if wt == 2 else v, dtype="<f4").tolist()
        elif num == 7:
            ints += _ints(v)
    if dtype not in _DTYPES:
        raise ValueError(f"tensor {name}: unsupported data type {dtype}")
    dt = np.dtype(_DTYPES[dtype])
    if raw is not None:
        arr = np.frombuffer(raw, dtype=dt)  # a view of the file bytes; astype below copies once
    else:
        arr = np.array(floats if floats else ints, dtype=dt)
    return name, arr.astype(dt.newbyteorder("="), copy=False).reshape(dims)


def _node(buf: memoryview) -> tuple[str, tuple[str, ...], tuple[str, ...], tuple[tuple[str, Any], ...]]:
    ins: list[str] = []
    outs: list[str] = []
    op = ""
    attrs: list[tuple[str, Any]] = []
    for num, _wt, v in _fields(buf):
        if num == 1:
            ins.append(bytes(v).decode())
        elif num == 2:
            outs.append(bytes(v).decode())
        elif num == 4:
            op = bytes(v).decode()
        elif num == 5:
            an, ai = "", None
            for anum, _awt, av in _fields(v):
                if anum == 1:
                    an = bytes(av).decode()
                elif anum == 3:
                    ai = av
            attrs.append((an, ai))
    return op, tuple(ins), tuple(outs), tuple(attrs)


class DirectGraph:
    """The router graph's arithmetic in numpy (module docstring). ``score(ids, dense)`` takes the
    graph's inputs (``features.Features``: int64 ``(n,)`` and float32 ``(1, k)``) and returns the
    score as a Python float."""

    __slots__ = ("table", "mean", "std", "w1", "b1", "w", "b", "eps", "lo", "hi", "_ones", "_zero")

    def __init__(self, init: dict[str, np.ndarray]) -> None:
        table = init["table"]
        if table.ndim != 2:
            raise ValueError("router graph: table is not a matrix")
        # Copies (np.array), never views: a view would keep the whole file's bytes alive (+16 MB).
        self.table = np.array(table, dtype=np.float32)
        self.mean = np.array(init["mean"], dtype=np.float32).reshape(-1)
        self.std = np.array(init["std"], dtype=np.float32).reshape(-1)
        self.w = np.array(init["w"], dtype=np.float32).reshape(-1)
        self.w1: np.ndarray | None = None
        self.b1: np.ndarray | None = None
        k = self.w.size
        if "w1" in init:
            self.w1 = np.ascontiguousarray(np.array(init["w1"], dtype=np.float32))
            self.b1 = np.array(init["b1"], dtype=np.float32).reshape(-1)
            if self.w1.ndim != 2 or self.w1.shape[1] != self.w.size or self.b1.size != self.w.size:
                raise ValueError("router graph: unexpected hidden-layer shapes")
            k = self.w1.shape[0]
        self.b = float(np.float32(init["b"].reshape(-1)[0]))
        self.eps = np.float32(init["eps"].reshape(-1)[0])
        self.lo = np.float32(init["lo"].reshape(-1)[0])
        self.hi = np.float32(init["hi"].reshape(-1)[0])
        if float(init["one"].reshape(-1)[0]) != 1.0 or not (self.mean.size == self.std.size == k > table.shape[1]):
            raise ValueError("router graph: unexpected initializer shapes")
        self._ones = np.ones(0, dtype=np.float32)
        self._zero = np.zeros(table.shape[1], dtype=np.float32)

    @classmethod
    def load(cls, path: str | Path) -> DirectGraph | None:
        """The graph at ``path`` as a ``DirectGraph``, or ``None`` when its nodes are not exactly
        ``EXPECTED_NODES`` or the file cannot be read this way (the caller keeps ``session.run``)."""
        try:
            data = memoryview(Path(path).read_bytes())
            graph = next((v for num, wt, v in _fields(data) if num == 7 and wt == 2), None)
            if graph is None:
                return None
            nodes, init = [], {}
            for num, wt, v in _fields(graph):
                if num == 1 and wt == 2:
                    nodes.append(_node(v))
                elif num == 5 and wt == 2:
                    name, arr = _tensor(v)
                    init[name] = arr
            if tuple(nodes) == EXPECTED_NODES:
                init.pop("w1", None)
                return cls(init)
            if tuple(nodes) == EXPECTED_NODES_MLP and "w1" in init and "b1" in init:
                return cls(init)
            return None
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            return None

    def score(self, ids: np.ndarray, dense: np.ndarray) -> float:
        """sigmoid(z @ w + b), or sigmoid(relu(z @ w1 + b1) @ w + b) with the hidden layer, where
        z = clip((concat(v, dense) - mean) / std, lo, hi) (module docstring); in float32 as the
        graph computes it up to the logit."""
        n = ids.shape[0]
        if n:
            ones = self._ones
            if ones.shape[0] < n:
                ones = self._ones = np.ones(max(n, 256), dtype=np.float32)
            pooled = (ones[:n] @ self.table.take(ids, 0)) / np.float32(n)  # IndexError for an id off the table
        else:
            pooled = self._zero
        v = pooled / np.sqrt(np.dot(pooled, pooled) + self.eps)
        z = (np.concatenate((v, dense.reshape(-1))) - self.mean) / self.std
        np.minimum(np.maximum(z, self.lo, out=z), self.hi, out=z)
        if self.w1 is not None:
            z = z @ self.w1
            z += self.b1
            np.maximum(z, np.float32(0.0), out=z)
        logit = float(np.dot(z, self.w)) + self.b
        if logit < -700.0:  # exp overflow: the sigmoid is 0 to double precision
            return 0.0
        return 1.0 / (1.0 + math.exp(-logit))
