"""The router's featuriser: prompt text -> token ids (``tokenizers``) + a few dense statistics.

The only step outside the ONNX graph. The embedding lookup, the mean pooling, the standardisation
and the classifier are inside it (``onnx_router`` module docstring). Training and serving call the
same ``featurise``.

Exact behaviour (pinned by ``tests/routing/test_features.py``):

1. **Bound the input** (``bound``): text longer than ``MAX_CHARS`` (4,096) characters is cut to its
   first ``HEAD_CHARS`` (3,072) and last ``TAIL_CHARS`` (1,024) characters joined by ``"\\n"``, so
   the cost of a 100 K-character prompt is that of a 4 K one. Length statistics use the full text.
2. **Token ids**: the bounded text encoded by the router's tokenizer (``tokenizer.json`` beside the
   model: the Llama 2 tokenizer shipped in the ``wordllama`` wheel, pre-tokenised at spaces:
   ``train.PRE_TOKENIZER``), without special tokens
   (``add_special_tokens=False``, as wordllama embeds), as int64 ``(n,)``; at most ``MAX_TOKENS``
   (the first ones) are kept. Empty text gives no ids.
3. **Dense statistics** (``DENSE_NAMES``, float32, shape ``(1, 6)``), from the full text ``t``:
   ``log1p(len(t))``, ``log1p(t.count("\\n"))``, ``log1p(t.count("?"))``, ``1.0 if "```" in t else 0.0``,
   and over the UTF-8 bytes ``b`` of the bounded text: the share of ASCII digits and the share of the
   bytes ``= + - * / ^ < > { } [ ] ( ) _ \\ $ | & % # ;`` (both 0.0 for empty text).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAX_CHARS = 4096
HEAD_CHARS = 3072
TAIL_CHARS = 1024
#: Upper bound on token ids per prompt (4,096 characters are at most ~4,100 tokens; a safety cap).
MAX_TOKENS = 8192
#: The tokenizer shipped beside the model.
DEFAULT_TOKENIZER_PATH = Path(__file__).parent / "model" / "tokenizer.json"

_SYMBOL_BYTES = b"=+-*/^<>{}[]()_\\$|&%#;"
_DIGIT_BYTES = b"0123456789"

DENSE_NAMES = ("log_chars", "log_newlines", "log_questions", "code_fence", "digit_share", "symbol_share")


@dataclass(frozen=True, slots=True)
class Features:
    """One prompt's features: ``ids`` int64 ``(n,)`` token ids in text order, ``dense`` float32
    ``(1, len(DENSE_NAMES))``."""

    ids: np.ndarray
    dense: np.ndarray


def bound(text: str) -> str:
    """``text`` if at most ``MAX_CHARS`` characters, else its head and tail (see module docstring)."""
    if len(text) <= MAX_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


def load_tokenizer(path: str | Path = DEFAULT_TOKENIZER_PATH) -> Any:
    """A ``tokenizers.Tokenizer`` from ``path`` with padding and truncation switched off.

    Raises ``FileNotFoundError`` when the file is missing and ``ValueError``/``Exception`` from
    ``tokenizers`` when it is not a tokenizer file."""
    from tokenizers import Tokenizer

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"tokenizer not found: {p}")
    tok = Tokenizer.from_file(str(p))
    tok.no_padding()
    tok.no_truncation()
    return tok


def dense(text: str, short: str) -> np.ndarray:
    """The dense statistics (module docstring) of ``text`` and its bounded form ``short``.

    The byte shares are counted with ``bytes.translate`` (delete the digits / symbols, compare
    lengths): the same counts as a numpy lookup over the bytes, several µs cheaper per prompt."""
    b = short.encode("utf-8", errors="replace")
    nb = len(b)
    return np.array(
        [
            [
                math.log1p(len(text)),
                math.log1p(text.count("\n")),
                math.log1p(text.count("?")),
                1.0 if "```" in text else 0.0,
                float(nb - len(b.translate(None, _DIGIT_BYTES))) / nb if nb else 0.0,
                float(nb - len(b.translate(None, _SYMBOL_BYTES))) / nb if nb else 0.0,
            ]
        ],
        dtype=np.float32,
    )


def featurise(text: str, tokenizer: Any) -> Features:
    """Features of one prompt (module docstring) with ``tokenizer`` (``load_tokenizer``). Never raises
    for any ``str``."""
    short = bound(text)
    if not short:
        return Features(ids=np.zeros(0, dtype=np.int64), dense=dense(text, short))
    # encode_batch_fast skips the offsets (about half the cost of encode); same ids.
    enc = tokenizer.encode_batch_fast([short], add_special_tokens=False)[0] if hasattr(tokenizer, "encode_batch_fast") \
        else tokenizer.encode(short, add_special_tokens=False)
    return Features(ids=np.asarray(enc.ids[:MAX_TOKENS], dtype=np.int64), dense=dense(text, short))


def featurise_many(texts: list[str], tokenizer: Any) -> list[Features]:
    """``featurise`` of every text, in order (tokenised as one batch; same ids as one by one)."""
    shorts = [bound(t) for t in texts]
    batch = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    encs = batch(shorts, add_special_tokens=False) if texts else []
    out = []
    for t, s, e in zip(texts, shorts, encs):
        ids = np.asarray(e.ids[:MAX_TOKENS], dtype=np.int64) if s else np.zeros(0, dtype=np.int64)
        out.append(Features(ids=ids, dense=dense(t, s)))
    return out
