"""The router graph in numpy (nadir_extproc.routing.direct): used for the shipped graph, equal to
onnxruntime's session.run on it, and refused for any other graph (session.run then scores)."""

from __future__ import annotations

import numpy as np
import pytest

from nadir_extproc.routing.direct import DirectGraph, _fields, _tensor
from nadir_extproc.routing.features import featurise
from nadir_extproc.routing.onnx_router import DEFAULT_MODEL_PATH, OnnxScorer

onnx = pytest.importorskip("onnx", reason="the 'train' extra (onnx) writes the test graphs")
from onnx import helper, numpy_helper  # noqa: E402

TEXTS = ["", "hi", "What's the capital of France?", "Why does this fail?\n```python\nprint(1/0)\n```",
         "日本語 ✓ é", "Explain relativity with examples. " * 40, "x" * 9000]


@pytest.fixture(scope="module")
def scorer() -> OnnxScorer:
    return OnnxScorer()


def test_shipped_graph_is_scored_in_numpy_as_session_run_scores_it(scorer):
    assert scorer.direct is not None
    assert scorer.direct.table.shape == (32000, 256) and scorer.direct.table.dtype == np.float32
    for t in TEXTS:
        f = featurise(t, scorer.tokenizer)
        want = float(scorer.session.run(None, {"ids": f.ids, "dense": f.dense})[0].reshape(-1)[0])
        assert scorer.score(t) == pytest.approx(want, abs=1e-5), t[:30]


def test_session_run_when_asked(scorer):
    s = OnnxScorer(direct=False)
    assert s.direct is None
    assert [s.score(t) for t in TEXTS] == pytest.approx([scorer.score(t) for t in TEXTS], abs=1e-5)


def test_any_other_graph_keeps_session_run(tmp_path, scorer):
    # The same arithmetic with one more node (an Identity after the Sigmoid): session.run gives the
    # same scores, but the graph is not the exported one, so it is not computed in numpy.
    m = onnx.load(str(DEFAULT_MODEL_PATH))
    m.graph.node[-1].output[0] = "score0"
    m.graph.node.append(helper.make_node("Identity", ["score0"], ["score"]))
    path = tmp_path / "other.onnx"
    onnx.save(m, str(path))
    assert DirectGraph.load(path) is None
    other = OnnxScorer(path, DEFAULT_MODEL_PATH.with_name("tokenizer.json"))
    assert other.direct is None
    assert other.score("hi") == pytest.approx(scorer.score("hi"), abs=1e-5)


def test_unreadable_file_gives_none(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x3a\xff\xff\xff\xff\x0f")  # field 7, length-delimited, length far past the end
    assert DirectGraph.load(bad) is None
    assert DirectGraph.load(tmp_path / "missing.onnx") is None


@pytest.mark.parametrize("arr", [np.array([[1.5, -2.0], [0.25, 3.0]], dtype=np.float32), np.array([7, -1], dtype=np.int64),
                                 np.array([0.5, 1.0], dtype=np.float16)])
def test_tensor_reader_reads_raw_and_typed_fields(arr):
    raw = numpy_helper.from_array(arr, "t")  # raw_data
    dt = {np.float32: onnx.TensorProto.FLOAT, np.int64: onnx.TensorProto.INT64, np.float16: onnx.TensorProto.FLOAT16}[arr.dtype.type]
    typed = helper.make_tensor("t", dt, arr.shape, arr.flatten().tolist())  # float_data / int64_data / int32 bits
    for t in (raw, typed):
        if arr.dtype == np.float16 and t is typed:
            continue  # float16 in typed form travels as int32 bit patterns: not a shape the exporter writes
        name, got = _tensor(memoryview(t.SerializeToString()))
        assert name == "t" and got.dtype == arr.dtype and got.tolist() == arr.tolist()


def test_fields_reads_varints_and_lengths():
    # field 1 varint 300 (0xAC 0x02), field 2 bytes "ab"
    assert [(n, w, bytes(v) if w == 2 else v) for n, w, v in _fields(memoryview(b"\x08\xac\x02\x12\x02ab"))] == [(1, 0, 300), (2, 2, b"ab")]
