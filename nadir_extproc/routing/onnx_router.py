"""The ONNX router: the trained prompt classifier scores P(strong model needed); the policy picks the model.

Scoring = ``features.featurise`` (the ``tokenizers`` tokenizer + dense statistics) + the graph
written by ``train.export_onnx``, computed by ``routing.direct`` (numpy, the weights read from the
file) when it is exactly that graph, else by one onnxruntime session::

    inputs   ids int64 [n] (token ids), dense float32 [1, 6]
    rows   = float32(table[ids])                 table: float16 [32000, 256] (wordllama l2_supercat)
    pooled = sum(rows, axis 0) / max(n, 1);  v = pooled / sqrt(sum(pooled * pooled) + 1e-12)
    x      = concat(v, dense)                    [1, 262]
    z      = clip((x - mean) / std, -3, 3)
    h      = relu(z @ w1 + b1)                   w1 [262, 32], b1 [1, 32]: the hidden layer (router v2.4;
                                                 up to v2.3 the head was linear: h = z)
    score  = sigmoid(h @ w + b)                                           output  score float32 [1]

The tokenizer is ``tokenizer.json`` beside the model file; the graph's metadata records its
sha256 (``tokenizer_sha256``) and a mismatch is a load error. The session is created once, with one
intra-op and one inter-op thread, sequential execution and all graph optimisations.
``load_router`` builds an ``OnnxRouter`` when the model loads and answers with the ``RuleRouter``
otherwise (counted as ``router_model_unavailable``, logged once); an inference error at request time
is answered by the rule router too (counted as ``router_inference_error``), so traffic never stops.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from nadir_extproc.routing.base import Decision, RouteRequest, Router
from nadir_extproc.routing.direct import MAX_DIFF, DirectGraph
from nadir_extproc.routing.features import DENSE_NAMES, featurise, load_tokenizer
from nadir_extproc.routing.policy import TierPolicy
from nadir_extproc.routing.rules import RuleRouter
from nadir_extproc.stats import count

#: The model shipped inside the package (see ``model/MODEL_CARD.md``).
DEFAULT_MODEL_PATH = Path(__file__).parent / "model" / "router.onnx"
INPUTS = ("ids", "dense")
#: Prompts on which the numpy graph must match session.run at load (empty, short, code, long).
PROBES = ("", "warm-up", "What's the capital of France?", "Why does this fail?\n```python\nprint(1/0)\n```",
          "Prove that the square root of 2 is irrational. " * 120)
OUTPUT = "score"


class ModelError(RuntimeError):
    """The model file is missing, unreadable, or not a router graph (wrong inputs/outputs)."""


class OnnxScorer:
    """P(strong model needed) for a prompt text, from the ONNX graph at ``path`` and the tokenizer
    at ``tokenizer_path`` (default: ``tokenizer.json`` beside the model).

    Raises ``ModelError`` from the constructor when a file is missing or corrupt, the tokenizer is
    not the one the graph was trained with (``tokenizer_sha256`` metadata), the graph does not have
    the router's inputs and output, or a trial run fails. ``metadata`` holds the graph's metadata
    properties (``version``, ``trained``, ``seed`` … as written by training).

    ``direct`` (default): score with ``routing.direct.DirectGraph`` — the same graph in numpy,
    ~50 µs cheaper per request than ``session.run`` on the request path, +33 MB resident — when
    the file is the graph ``train.export_onnx`` writes and both agree on ``PROBES`` at load
    (``direct`` is then set; else ``None`` and ``session.run`` scores).
    """

    def __init__(self, path: str | Path = DEFAULT_MODEL_PATH, tokenizer_path: str | Path | None = None,
                 direct: bool = True) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"router model not found: {self.path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise ModelError(f"router model {self.path} cannot be loaded: {type(e).__name__}") from e
        names = tuple(i.name for i in self.session.get_inputs())
        outs = tuple(o.name for o in self.session.get_outputs())
        if names != INPUTS or outs != (OUTPUT,):
            raise ModelError(f"router model {self.path}: inputs {names} / outputs {outs}, expected {INPUTS} / ({OUTPUT},)")
        dense_shape = self.session.get_inputs()[1].shape
        if dense_shape[-1] != len(DENSE_NAMES):
            raise ModelError(f"router model {self.path}: dense input width {dense_shape[-1]}, expected {len(DENSE_NAMES)}")
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.tokenizer_path = Path(tokenizer_path) if tokenizer_path else self.path.with_name("tokenizer.json")
        try:
            raw = self.tokenizer_path.read_bytes()
            want = self.metadata.get("tokenizer_sha256")
            if want and hashlib.sha256(raw).hexdigest() != want:
                raise ModelError(f"router tokenizer {self.tokenizer_path} is not the one {self.path} was trained with")
            self.tokenizer = load_tokenizer(self.tokenizer_path)
        except ModelError:
            raise
        except Exception as e:  # missing file, not a tokenizer (tokenizers raises its own types)
            raise ModelError(f"router tokenizer {self.tokenizer_path} cannot be loaded: {type(e).__name__}") from e
        self._run = self.session.run
        self.direct: DirectGraph | None = None
        try:
            self.score("warm-up")
        except Exception as e:
            raise ModelError(f"router model {self.path}: trial run failed: {type(e).__name__}") from e
        if direct:
            self.direct = self._checked_direct()

    def _checked_direct(self) -> DirectGraph | None:
        """The graph computed with numpy (``routing.direct``) when this file is the exported
        graph and agrees with ``session.run`` on ``PROBES`` (within ``direct.MAX_DIFF``); else
        ``None`` (``session.run`` scores every prompt)."""
        g = DirectGraph.load(self.path)
        if g is None:
            return None
        try:
            for text in PROBES:
                f = featurise(text, self.tokenizer)
                want = float(self._run(None, {"ids": f.ids, "dense": f.dense})[0].reshape(-1)[0])
                if not abs(g.score(f.ids, f.dense) - want) <= MAX_DIFF:
                    return None
        except Exception:  # noqa: BLE001 — any doubt: session.run
            return None
        return g

    def score(self, text: str) -> float:
        """P(strong needed) in [0, 1] for ``text``; raises on an inference error (or a NaN score)."""
        f = featurise(text, self.tokenizer)
        g = self.direct
        if g is not None:
            s = g.score(f.ids, f.dense)
        else:
            s = float(self._run(None, {"ids": f.ids, "dense": f.dense})[0].reshape(-1)[0])
        if not math.isfinite(s):
            raise ValueError("router model returned a non-finite score")
        return s

    def score_many(self, texts: list[str]) -> np.ndarray:
        """Scores of ``texts`` (float64 ``(len(texts),)``), one ``score`` call each."""
        return np.array([self.score(t) for t in texts], dtype=np.float64)


class OnnxRouter:
    """``Router`` over an ``OnnxScorer`` and a ``TierPolicy``.

    Decision: the client's pinned tier if the provider has it (reason ``pinned``), else the policy's
    tier for the score (reason ``score``); then the policy's hard constraints (``TierPolicy.pick``,
    noted as ``+context``/``+vision``/``+tools``). ``score`` is the model's P(strong needed) even
    when pinned. On an inference error the ``fallback`` (rule router) decides. Raises ``KeyError``
    for a provider the policy has no tiers for.
    """

    def __init__(self, policy: TierPolicy, scorer: OnnxScorer, fallback: Router | None = None) -> None:
        self.policy = policy
        self.scorer = scorer
        self.fallback = fallback or RuleRouter(policy)

    def route(self, request: RouteRequest) -> Decision:
        """Decide for one request (see class docstring)."""
        try:
            score = self.scorer.score(request.prompt)
        except Exception as e:  # noqa: BLE001 — the rule router answers instead
            count("router_inference_error", type(e).__name__)
            return self.fallback.route(request)
        return self.policy.decide(request, "onnx", lambda: (self.policy.tier_for_score(score), "score", score),
                                  pinned_score=score)


def load_router(policy: TierPolicy, model_path: str | Path | None = None, kind: str = "onnx") -> Router:
    """The service's router: ``OnnxRouter`` over the model at ``model_path`` (default: the shipped
    model) when ``kind == "onnx"`` and it loads; else ``RuleRouter``. A model that fails to load is
    counted as ``router_model_unavailable`` (logged once, with the reason but no prompt data)."""
    if kind != "onnx":
        return RuleRouter(policy)
    try:
        scorer = OnnxScorer(model_path or DEFAULT_MODEL_PATH)
    except ModelError as e:
        count("router_model_unavailable", str(e))
        return RuleRouter(policy)
    return OnnxRouter(policy, scorer)
