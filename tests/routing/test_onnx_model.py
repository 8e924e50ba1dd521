"""The shipped ONNX router: its graph computes what the model card says, agrees with the
training-time (scikit-learn) scores, and is small and single-threaded."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from nadir_extproc.routing.features import DIM, featurise
from nadir_extproc.routing.onnx_router import DEFAULT_MODEL_PATH, OnnxScorer

onnx = pytest.importorskip("onnx", reason="the 'train' extra (onnx) reads the graph's weights")
from onnx import numpy_helper  # noqa: E402

MODEL_DIR = DEFAULT_MODEL_PATH.parent


@pytest.fixture(scope="module")
def scorer() -> OnnxScorer:
    return OnnxScorer()


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    m = onnx.load(str(DEFAULT_MODEL_PATH))
    return {t.name: numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer}


def by_hand(text: str, w: dict[str, np.ndarray]) -> float:
    """The model card's formula in plain Python floats: sigmoid(sum(v*w[idx])/|v| + z.w_dense + b)."""
    f = featurise(text)
    v = [math.log(1.0 + float(c)) * w["idf"][i] for i, c in zip(f.idx.tolist(), f.cnt.tolist())]
    norm = math.sqrt(sum(x * x for x in v) + 1e-12)
    lin = sum(x * w["w"][i] for x, i in zip(v, f.idx.tolist())) / norm
    z = [(float(d) - m) / s for d, m, s in zip(f.dense[0], w["mean"][0], w["std"][0])]
    lin += sum(zi * wd for zi, wd in zip(z, w["w_dense"][:, 0])) + w["b"][0]
    return 1.0 / (1.0 + math.exp(-lin))


def test_model_is_small_and_single_threaded(scorer):
    assert DEFAULT_MODEL_PATH.stat().st_size < 5 * 1024 * 1024
    opts = scorer.session.get_session_options()
    assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (1, 1)
    assert scorer.metadata["version"].startswith("router-")


def test_reference_scores_match_training_time(scorer):
    # reference_scores.json is scikit-learn's predict_proba at training time (train.py).
    refs = json.loads((MODEL_DIR / "reference_scores.json").read_text(encoding="utf-8"))
    assert len(refs) >= 10
    for r in refs:
        assert scorer.score(r["prompt"]) == pytest.approx(r["score"], abs=2e-5), r["prompt"][:40]


@pytest.mark.parametrize(
    "text",
    ["", "hi", "What's the capital of France?", "Why does this fail?\n```python\nprint(1/0)\n```", "x" * 20_000, "日本語 ✓ é"],
)
def test_graph_computes_the_documented_formula(scorer, weights, text):
    assert weights["idf"].shape == (DIM,) and weights["w"].shape == (DIM,)
    assert scorer.score(text) == pytest.approx(by_hand(text, weights), abs=1e-5)


def test_scores_are_deterministic_across_sessions(scorer):
    texts = ["Prove Fermat's little theorem.", "Say hello in Japanese."]
    assert [OnnxScorer().score(t) for t in texts] == [scorer.score(t) for t in texts]


def test_export_agrees_with_scikit_learn(tmp_path):
    # Train a tiny model here and check the exported graph against predict_proba.
    sklearn = pytest.importorskip("sklearn", reason="the 'train' extra")
    from sklearn.linear_model import LogisticRegression

    from nadir_extproc.routing.train import design_matrix, export_onnx, featurise_all, fit_transform

    assert sklearn
    texts = ["hello there", "what time is it", "prove the lemma by induction", "implement quicksort in C", "hi", "derive the gradient"]
    y = np.array([0, 0, 1, 1, 0, 1])
    feats = featurise_all(texts)
    t = fit_transform(feats)
    m = LogisticRegression(C=10.0, max_iter=1000).fit(design_matrix(feats, t), y)
    path = tmp_path / "tiny.onnx"
    export_onnx(path, t, m.coef_[0], float(m.intercept_[0]), {"version": "router-test", "seed": "0"})
    s = OnnxScorer(path)
    probe = ["prove it by induction", "hello", "", "quicksort proof"]
    expect = m.predict_proba(design_matrix(featurise_all(probe), t))[:, 1]
    assert [s.score(p) for p in probe] == pytest.approx(list(expect), abs=1e-5)
