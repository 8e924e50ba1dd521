"""Train the router: hashed n-gram features -> L2-regularised logistic regression -> one ONNX graph.

Training-only module (needs the ``train`` extra: scikit-learn, onnx). Recipe (``train``):

1. Data (``data.labelled`` + ``data.weakly_labelled``), split by subject/source (``data.split``,
   seeded); only the train side is used below.
2. Features (``features.featurise``); IDF over the training rows, ``idf = ln((1 + N) / (1 + df)) + 1``;
   sparse part ``log(1 + cnt) * idf``, L2-normalised per row; dense part standardised with the
   training mean and standard deviation (a zero deviation becomes 1).
3. ``C`` (inverse regularisation) chosen from ``C_GRID`` by 3-fold cross-validation grouped by
   subject/source on the labelled train rows (weakly labelled rows train every fold), by mean AUC.
4. ``LogisticRegression(C, solver="lbfgs", max_iter=2000)`` with per-row ``weight``; exported with
   ``export_onnx`` (weights of buckets never seen in training are exactly 0).
5. Reference scores: scikit-learn's ``predict_proba`` on ``REFERENCE_PROMPTS`` written next to the
   model (``reference_scores.json``) so tests can check the ONNX graph against training time.

Deterministic for a given seed and data (lbfgs is deterministic; no sampling besides the split).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nadir_extproc.routing.data import Example, labelled, split, weakly_labelled
from nadir_extproc.routing.features import DENSE_NAMES, DIM, Features, featurise

C_GRID = (0.25, 1.0)
DEFAULT_SEED = 20250
#: Fixed prompts whose training-time scores are written beside the model (and pinned by tests).
REFERENCE_PROMPTS = (
    "What's the capital of France?",
    "Say hello in Japanese.",
    "hi",
    "",
    "Write a haiku about autumn leaves.",
    "Derive the closed form of 1 + 2 + ... + n.",
    "Why does this fail?\n```python\nprint(1/0)\n```",
    "Prove that there are infinitely many primes p such that p + 2 is also prime, or explain why this is open.",
    "Implement a lock-free multi-producer multi-consumer queue in C++ with correct memory ordering, "
    "and prove it is linearizable.",
    "Which planet is closest to the Sun?\nA. Venus\nB. Mercury\nC. Mars\nD. Earth\nAnswer:",
    "A train leaves at 3 pm going 60 km/h; another leaves at 4 pm going 80 km/h. When does the second catch up?",
    "Ünïcödé 日本語のテキスト ✓ " * 300,
)


@dataclass
class Transform:
    """The fitted feature transform: ``idf`` float64 ``(DIM,)``, ``mean``/``std`` float64 ``(6,)``."""

    idf: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def featurise_all(texts: list[str]) -> list[Features]:
    """``featurise`` of every text, in order."""
    return [featurise(t) for t in texts]


def fit_transform(feats: list[Features]) -> Transform:
    """IDF and dense standardisation from training features (see module docstring)."""
    df = np.zeros(DIM, dtype=np.float64)
    for f in feats:
        df[f.idx] += 1.0
    n = len(feats)
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    dense = np.concatenate([f.dense for f in feats]).astype(np.float64)
    mean = dense.mean(axis=0)
    std = dense.std(axis=0)
    std[std == 0] = 1.0
    return Transform(idf, mean, std)


def design_matrix(feats: list[Features], tr: Transform):
    """The scipy CSR design matrix ``(len(feats), DIM + 6)``: normalised sparse part, then the
    standardised dense part (float64)."""
    from scipy import sparse

    indptr = [0]
    indices: list[np.ndarray] = []
    values: list[np.ndarray] = []
    k = len(DENSE_NAMES)
    for f in feats:
        v = np.log1p(f.cnt.astype(np.float64)) * tr.idf[f.idx]
        v = v / np.sqrt((v * v).sum() + 1e-12)
        z = (f.dense[0].astype(np.float64) - tr.mean) / tr.std
        indices.append(np.concatenate([f.idx, DIM + np.arange(k)]))
        values.append(np.concatenate([v, z]))
        indptr.append(indptr[-1] + f.idx.size + k)
    return sparse.csr_matrix(
        (np.concatenate(values), np.concatenate(indices), np.array(indptr)), shape=(len(feats), DIM + k)
    )


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from nadir_extproc.routing.evaluate import auc

    return auc(y, s)


def choose_c(train: list[Example], feats: list[Features], seed: int) -> tuple[float, dict[float, float]]:
    """``C`` from ``C_GRID`` by grouped 3-fold CV (module docstring); returns ``(C, {C: mean AUC})``."""
    import random

    from sklearn.linear_model import LogisticRegression

    groups = sorted({e.group for e in train if e.strong_ok is not None})
    random.Random(seed + 1).shuffle(groups)
    fold_of = {g: i % 3 for i, g in enumerate(groups)}
    y = np.array([e.label for e in train])
    w = np.array([e.weight for e in train])
    scores: dict[float, list[float]] = {c: [] for c in C_GRID}
    for k in range(3):
        tr_i = [i for i, e in enumerate(train) if e.strong_ok is None or fold_of[e.group] != k]
        va_i = [i for i, e in enumerate(train) if e.strong_ok is not None and fold_of[e.group] == k]
        t = fit_transform([feats[i] for i in tr_i])
        x_tr = design_matrix([feats[i] for i in tr_i], t)
        x_va = design_matrix([feats[i] for i in va_i], t)
        for c in C_GRID:
            m = LogisticRegression(C=c, solver="lbfgs", max_iter=2000)
            m.fit(x_tr, y[tr_i], sample_weight=w[tr_i])
            scores[c].append(_auc(y[va_i], m.predict_proba(x_va)[:, 1]))
    means = {c: float(np.mean(v)) for c, v in scores.items()}
    return max(C_GRID, key=lambda c: (means[c], -c)), means


def export_onnx(path: Path, tr: Transform, coef: np.ndarray, intercept: float, metadata: dict[str, str]) -> None:
    """Write the router graph (``onnx_router`` module docstring) to ``path``.

    ``coef`` float64 ``(DIM + 6,)``: bucket weights then dense weights. Stored as float32. Every
    bucket keeps its idf, weighted or not: all of a prompt's buckets count in its L2 norm."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    k = len(DENSE_NAMES)
    w = coef[:DIM].astype(np.float32)
    idf = tr.idf.astype(np.float32)
    inits = [
        numpy_helper.from_array(idf, "idf"),
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(tr.mean.astype(np.float32).reshape(1, k), "mean"),
        numpy_helper.from_array(tr.std.astype(np.float32).reshape(1, k), "std"),
        numpy_helper.from_array(coef[DIM:].astype(np.float32).reshape(k, 1), "w_dense"),
        numpy_helper.from_array(np.array([intercept], dtype=np.float32), "b"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
        numpy_helper.from_array(np.array(1e-12, dtype=np.float32), "eps"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "shape1"),
    ]
    N = helper.make_node
    nodes = [
        N("Add", ["cnt", "one"], ["cnt1"]),
        N("Log", ["cnt1"], ["tf"]),
        N("Gather", ["idf", "idx"], ["idf_i"]),
        N("Mul", ["tf", "idf_i"], ["v"]),
        N("Mul", ["v", "v"], ["v2"]),
        N("ReduceSum", ["v2"], ["ss"], keepdims=0),
        N("Add", ["ss", "eps"], ["ss_e"]),
        N("Sqrt", ["ss_e"], ["norm"]),
        N("Gather", ["w", "idx"], ["w_i"]),
        N("Mul", ["v", "w_i"], ["vw"]),
        N("ReduceSum", ["vw"], ["dot"], keepdims=0),
        N("Div", ["dot", "norm"], ["lin"]),
        N("Sub", ["dense", "mean"], ["dc"]),
        N("Div", ["dc", "std"], ["z"]),
        N("MatMul", ["z", "w_dense"], ["zd"]),
        N("Reshape", ["zd", "shape1"], ["zd1"]),
        N("Add", ["zd1", "lin"], ["s1"]),
        N("Add", ["s1", "b"], ["logit"]),
        N("Sigmoid", ["logit"], ["score"]),
    ]
    graph = helper.make_graph(
        nodes,
        "nadir_router",
        [
            helper.make_tensor_value_info("idx", TensorProto.INT64, ["n"]),
            helper.make_tensor_value_info("cnt", TensorProto.FLOAT, ["n"]),
            helper.make_tensor_value_info("dense", TensorProto.FLOAT, [1, k]),
        ],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="nadir-extproc")
    model.ir_version = 8
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def train(data_dir: Path, out_dir: Path, seed: int = DEFAULT_SEED, log=print) -> dict[str, Any]:
    """Train on ``data_dir`` and write ``router.onnx``, ``reference_scores.json`` and
    ``train_info.json`` into ``out_dir``; returns the training info.

    Raises ``FileNotFoundError`` when the labelled files are missing."""
    from sklearn.linear_model import LogisticRegression

    examples = labelled(data_dir) + weakly_labelled(data_dir)
    train_rows, test_rows = split(examples, seed)
    log(f"rows: train {len(train_rows)}, held out {len(test_rows)}")
    feats = featurise_all([e.prompt for e in train_rows])
    c, cv = choose_c(train_rows, feats, seed)
    log(f"C by grouped 3-fold CV (mean AUC): {cv} -> C={c}")
    t = fit_transform(feats)
    x = design_matrix(feats, t)
    y = np.array([e.label for e in train_rows])
    w = np.array([e.weight for e in train_rows])
    model = LogisticRegression(C=c, solver="lbfgs", max_iter=2000)
    model.fit(x, y, sample_weight=w)
    coef = model.coef_[0].astype(np.float64)
    # Buckets no training row has: weight exactly 0 (lbfgs leaves ~1e-20 noise there).
    seen = np.zeros(DIM, dtype=bool)
    for f in feats:
        seen[f.idx] = True
    coef[:DIM][~seen] = 0.0
    intercept = float(model.intercept_[0])
    date = dt.date.today().isoformat()
    info: dict[str, Any] = {
        "trained": date,
        "seed": seed,
        "C": c,
        "cv_auc": {str(k): round(v, 4) for k, v in cv.items()},
        "train_rows": len(train_rows),
        "train_positive": int(y.sum()),
        "held_out_rows": len(test_rows),
        "held_out_groups": sorted({e.group for e in test_rows}),
        "sources": sorted({e.source for e in train_rows}),
        "nonzero_bucket_weights": int((coef[:DIM] != 0).sum()),
    }
    meta = {"version": f"router-{date}-seed{seed}", "trained": date, "seed": str(seed), "C": str(c)}
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "router.onnx"
    export_onnx(onnx_path, t, coef, intercept, meta)
    info["onnx_bytes"] = onnx_path.stat().st_size
    info["onnx_sha256"] = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    # Training-time (scikit-learn) scores of the reference prompts; tests compare the graph to them.
    ref_x = design_matrix(featurise_all(list(REFERENCE_PROMPTS)), t)
    ref = model.predict_proba(ref_x)[:, 1]
    (out_dir / "reference_scores.json").write_text(
        json.dumps([{"prompt": p, "score": float(s)} for p, s in zip(REFERENCE_PROMPTS, ref)], indent=1, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    (out_dir / "train_info.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    log(f"wrote {onnx_path} ({info['onnx_bytes']} bytes)")
    return info
