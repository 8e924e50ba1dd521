"""The shipped ONNX router: its graph computes what the model card says (embedding lookup and pooling
equal a direct numpy computation on the graph's own table), agrees with the training-time scores,
is small, single-threaded, and refuses a tokenizer it was not trained with."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nadir_extproc.routing.features import DEFAULT_TOKENIZER_PATH, featurise, load_tokenizer
from nadir_extproc.routing.onnx_router import DEFAULT_MODEL_PATH, ModelError, OnnxScorer

onnx = pytest.importorskip("onnx", reason="the 'train' extra (onnx) reads the graph's weights")
from onnx import numpy_helper  # noqa: E402

MODEL_DIR = DEFAULT_MODEL_PATH.parent


@pytest.fixture(scope="module")
def scorer() -> OnnxScorer:
    return OnnxScorer()


@pytest.fixture(scope="module")
def graph():
    return onnx.load(str(DEFAULT_MODEL_PATH))


@pytest.fixture(scope="module")
def weights(graph) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}


def with_outputs(graph, names: list[str]):
    """An onnxruntime session of the same graph that also outputs the intermediate tensors ``names``."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    g = onnx.ModelProto()
    g.CopyFrom(graph)
    for n in names:
        g.graph.output.append(helper.make_tensor_value_info(n, TensorProto.FLOAT, None))
    return ort.InferenceSession(g.SerializeToString(), providers=["CPUExecutionProvider"])


def test_model_files_are_small_and_the_session_single_threaded(scorer, weights):
    total = sum(p.stat().st_size for p in MODEL_DIR.iterdir() if p.is_file())
    assert total <= 40 * 1024 * 1024  # issue 15: the model files add at most 40 MB to the wheel
    assert weights["table"].shape == (32000, 256) and weights["table"].dtype == np.float16
    opts = scorer.session.get_session_options()
    assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (1, 1)
    assert scorer.metadata["version"].startswith("router-v2-")


def test_embedding_lookup_and_pooling_equal_numpy_on_the_table(graph, weights):
    # Token ids of "Hello world" -> the graph's pooled vector is the mean of the two table rows,
    # then divided by its L2 norm: computed here directly on the table with numpy.
    tok = load_tokenizer()
    ids = np.array([tok.token_to_id("▁Hello"), tok.token_to_id("▁world")], dtype=np.int64)
    sess = with_outputs(graph, ["pooled", "v"])
    _, pooled, v = sess.run(None, {"ids": ids, "dense": np.zeros((1, 6), np.float32)})
    table = weights["table"].astype(np.float32)
    expect = (table[ids[0]] + table[ids[1]]) / 2
    assert np.allclose(pooled[0], expect, rtol=0, atol=1e-6)
    assert np.allclose(v[0], expect / math.sqrt(float((expect * expect).sum()) + 1e-12), rtol=0, atol=1e-6)
    # No ids (empty prompt): pooled vector is zero (sum over no rows / max(0, 1)).
    _, pooled0, v0 = sess.run(None, {"ids": np.zeros(0, np.int64), "dense": np.zeros((1, 6), np.float32)})
    assert not pooled0.any() and not v0.any()


def by_hand(text: str, w: dict[str, np.ndarray]) -> float:
    """The model card's formula in plain numpy float64: z = clip((concat(v, dense) - mean) / std, -3, 3),
    then sigmoid(max(z . w1 + b1, 0) . w + b) (the hidden layer, when the graph has ``w1``) or sigmoid(z . w + b)."""
    f = featurise(text, load_tokenizer())
    rows = w["table"][f.ids].astype(np.float64)
    m = rows.sum(axis=0) / max(f.ids.size, 1) if f.ids.size else np.zeros(256)
    v = m / math.sqrt(float((m * m).sum()) + 1e-12)
    x = np.concatenate([v, f.dense[0].astype(np.float64)])
    z = np.clip((x - w["mean"][0].astype(np.float64)) / w["std"][0].astype(np.float64), -3.0, 3.0)
    if "w1" in w:
        z = np.maximum(z @ w["w1"].astype(np.float64) + w["b1"][0].astype(np.float64), 0.0)
    return 1.0 / (1.0 + math.exp(-(float(z @ w["w"][:, 0].astype(np.float64)) + float(w["b"][0]))))


@pytest.mark.parametrize(
    "text",
    ["", "hi", "What's the capital of France?", "Why does this fail?\n```python\nprint(1/0)\n```", "x" * 20_000, "日本語 ✓ é"],
)
def test_graph_computes_the_documented_formula(scorer, weights, text):
    assert scorer.score(text) == pytest.approx(by_hand(text, weights), abs=1e-5)


def test_reference_scores_match_training_time(scorer):
    # reference_scores.json holds the training-time (numpy, float64) scores (train.py).
    refs = json.loads((MODEL_DIR / "reference_scores.json").read_text(encoding="utf-8"))
    assert len(refs) >= 10
    for r in refs:
        assert scorer.score(r["prompt"]) == pytest.approx(r["score"], abs=2e-5), r["prompt"][:40]


def test_scores_are_deterministic_across_sessions(scorer):
    texts = ["Prove Fermat's little theorem.", "Say hello in Japanese."]
    assert [OnnxScorer().score(t) for t in texts] == [scorer.score(t) for t in texts]


def test_tokenizer_must_be_the_trained_one(tmp_path):
    other = tmp_path / "tokenizer.json"
    other.write_text(DEFAULT_TOKENIZER_PATH.read_text(encoding="utf-8").replace("\u2581Hello", "\u2581Hellx", 1), encoding="utf-8")
    with pytest.raises(ModelError, match="not the one"):
        OnnxScorer(DEFAULT_MODEL_PATH, other)
    with pytest.raises(ModelError, match="tokenizer"):
        OnnxScorer(DEFAULT_MODEL_PATH, tmp_path / "missing.json")


def test_the_shipped_graph_has_the_hidden_layer(weights):
    # Router v2.4 (model card): 32 ReLU units between the standardised features and the output.
    assert weights["w1"].shape == (262, 32) and weights["b1"].shape == (1, 32) and weights["w"].shape == (32, 1)


@pytest.mark.parametrize("hidden", [0, 4])
def test_export_agrees_with_scikit_learn(tmp_path, hidden):
    # A tiny table and model exported here, with either head: the graph's scores (session.run and
    # the numpy DirectGraph) equal Fitted.score (numpy) and scikit-learn's own predict_proba.
    pytest.importorskip("sklearn", reason="the 'train' extra")
    from nadir_extproc.routing.data import Example
    from nadir_extproc.routing.train import fit, export_onnx, pool
    from nadir_extproc.routing.features import featurise_many

    tok = load_tokenizer()
    rng = np.random.default_rng(0)
    table = rng.normal(size=(32000, 256)).astype(np.float16)
    texts = ["hello there", "what time is it", "prove the lemma by induction", "implement quicksort in C", "hi", "derive the gradient"]
    ex = [Example("mmlu", "mmlu/x", t, y, 1.0, 0.0) for t, y in zip(texts, (0, 0, 1, 1, 0, 1))]
    x = pool(featurise_many(texts, tok), table)
    m = fit(ex, x, 10.0 if hidden == 0 else 0.01, 1.0, hidden=hidden)
    assert (m.w1 is None) == (hidden == 0)
    path = tmp_path / "tiny.onnx"
    export_onnx(path, table, m, {"version": "router-v2-test", "seed": "0"})
    s = OnnxScorer(path, DEFAULT_TOKENIZER_PATH)
    assert s.direct is not None  # the exported graph is one the numpy path knows
    slow = OnnxScorer(path, DEFAULT_TOKENIZER_PATH, direct=False)
    probe = ["prove it by induction", "hello", "", "quicksort proof"]
    xp = pool(featurise_many(probe, tok), table)
    expect = m.score(xp)
    assert [s.score(p) for p in probe] == pytest.approx(list(expect), abs=1e-5)
    assert [slow.score(p) for p in probe] == pytest.approx(list(expect), abs=1e-5)
    # scikit-learn's own answer on the same standardised rows.
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    from nadir_extproc.routing.train import standardise, weights as row_weights

    z = standardise(x, m.mean, m.std)
    y = [e.label for e in ex]
    if hidden == 0:
        ref = LogisticRegression(C=10.0, solver="newton-cholesky", max_iter=200).fit(z, y, sample_weight=row_weights(ex, 1.0))
    else:
        ref = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=0.01, solver="lbfgs", max_iter=400, random_state=0).fit(
            z, y, sample_weight=row_weights(ex, 1.0))
    assert list(ref.predict_proba(standardise(xp, m.mean, m.std))[:, 1]) == pytest.approx(list(expect), abs=1e-6)
