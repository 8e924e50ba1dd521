"""The router's featuriser: prompt text -> hashed byte n-gram counts + a few dense statistics.

A small numpy step, identical at training and at serving time (both call ``featurise``). The rest
of the model (IDF weighting, L2 normalisation, standardisation, the linear layer and the sigmoid)
is inside the ONNX graph (``onnx_router``).

Exact behaviour (pinned by ``tests/routing/test_features.py``):

1. **Bound the input** (``bound``): text longer than ``MAX_CHARS`` (4,096) characters is cut to its
   first ``HEAD_CHARS`` (3,072) and last ``TAIL_CHARS`` (1,024) characters joined by ``"\\n"``, so
   the cost of a 100 K-character prompt is that of a 4 K one. Length statistics use the full text.
2. **Bytes**: the bounded text is lower-cased (``str.lower``) and encoded as UTF-8
   (``errors="replace"``).
3. **n-grams**: for each ``n`` in ``NGRAMS`` (2, 3, 4, 5) and each start ``i``, the integer
   ``g = b[i]*257**(n-1) + b[i+1]*257**(n-2) + ... + b[i+n-1]`` (< 2**41), then
   ``key = g + (n << 48)`` (so n-grams of different lengths never share a key), then the bucket is the
   top ``BITS`` (18) bits of ``(key * 0x9E3779B97F4A7C15) mod 2**64`` (Fibonacci hashing).
4. **Counts**: ``idx`` = the distinct buckets in ascending order (int64), ``cnt`` = how often each
   occurs (float32).
5. **Dense statistics** (``DENSE_NAMES``, float32, shape ``(1, 6)``), from the full text ``t``:
   ``log1p(len(t))``, ``log1p(t.count("\\n"))``, ``log1p(t.count("?"))``, ``1.0 if "```" in t else 0.0``,
   and over the bounded bytes ``b``: the share of ASCII digits and the share of the bytes
   ``= + - * / ^ < > { } [ ] ( ) _ \\ $ | & % # ;`` (both 0.0 for empty text).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_CHARS = 4096
HEAD_CHARS = 3072
TAIL_CHARS = 1024
NGRAMS = (2, 3, 4, 5)
BITS = 18
#: Number of hash buckets (the width of the sparse feature vector).
DIM = 1 << BITS
_MULT = np.uint64(0x9E3779B97F4A7C15)
_SHIFT = np.uint64(64 - BITS)
_BASE = np.uint64(257)
_OFFSET = {n: np.uint64(n << 48) for n in NGRAMS}
_SYMBOLS = np.zeros(256, dtype=bool)
_SYMBOLS[np.frombuffer(b"=+-*/^<>{}[]()_\\$|&%#;", dtype=np.uint8)] = True
_DIGITS = np.zeros(256, dtype=bool)
_DIGITS[ord("0") : ord("9") + 1] = True

DENSE_NAMES = ("log_chars", "log_newlines", "log_questions", "code_fence", "digit_share", "symbol_share")


@dataclass(frozen=True, slots=True)
class Features:
    """One prompt's features: ``idx`` int64 ``(n,)`` ascending distinct buckets in ``[0, DIM)``,
    ``cnt`` float32 ``(n,)`` their counts, ``dense`` float32 ``(1, len(DENSE_NAMES))``."""

    idx: np.ndarray
    cnt: np.ndarray
    dense: np.ndarray


def bound(text: str) -> str:
    """``text`` if at most ``MAX_CHARS`` characters, else its head and tail (see module docstring)."""
    if len(text) <= MAX_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


def buckets(data: bytes) -> np.ndarray:
    """Bucket of every byte n-gram of ``data`` (all n in ``NGRAMS``, in order of n then position),
    uint64 ``(m,)``; empty for data shorter than 2 bytes."""
    b = np.frombuffer(data, dtype=np.uint8).astype(np.uint64)
    parts = []
    g = b
    for n in range(2, NGRAMS[-1] + 1):
        m = b.size - n + 1
        if m <= 0:
            break
        g = g[:m] * _BASE + b[n - 1 :]  # the n-gram integers, from the (n-1)-gram ones
        if n in NGRAMS:
            parts.append(g + _OFFSET[n])
    if not parts:
        return np.zeros(0, dtype=np.uint64)
    keys = np.concatenate(parts) if len(parts) > 1 else parts[0]
    keys *= _MULT  # wraps mod 2**64
    keys >>= _SHIFT
    return keys


def _count(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of ``h`` ascending and how often each occurs (``np.unique`` semantics)."""
    s = np.sort(h)
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    cnt = np.diff(np.append(starts, s.size))
    return s[starts], cnt


def featurise(text: str) -> Features:
    """Features of one prompt (see the module docstring for the exact rule). Never raises."""
    short = bound(text)
    data = short.lower().encode("utf-8", errors="replace")
    h = buckets(data)
    if h.size:
        idx, cnt = _count(h)
    else:
        idx, cnt = h, h
    b = np.frombuffer(data, dtype=np.uint8)
    nb = b.size
    dense = np.array(
        [
            [
                math.log1p(len(text)),
                math.log1p(text.count("\n")),
                math.log1p(text.count("?")),
                1.0 if "```" in text else 0.0,
                float(_DIGITS[b].sum()) / nb if nb else 0.0,
                float(_SYMBOLS[b].sum()) / nb if nb else 0.0,
            ]
        ],
        dtype=np.float32,
    )
    return Features(idx=idx.astype(np.int64), cnt=cnt.astype(np.float32), dense=dense)
