"""The featuriser's exact rule (nadir_extproc.routing.features docstring), recomputed here with
plain Python integers."""

from __future__ import annotations

import math

import numpy as np

from nadir_extproc.routing.features import BITS, DENSE_NAMES, bound, buckets, featurise


def bucket(gram: bytes) -> int:
    """The documented hash: base-257 integer of the n-gram, + n << 48, Fibonacci-hashed to 18 bits."""
    g = 0
    for byte in gram:
        g = g * 257 + byte
    key = g + (len(gram) << 48)
    return ((key * 0x9E3779B97F4A7C15) % 2**64) >> (64 - 18)


def test_constants_are_the_documented_ones():
    assert BITS == 18
    assert DENSE_NAMES == ("log_chars", "log_newlines", "log_questions", "code_fence", "digit_share", "symbol_share")


def test_abc_hashes_by_hand():
    # "abc" -> bytes 97 98 99. 2-grams: ab = 97*257 + 98 = 25027, bc = 98*257 + 99 = 25285;
    # 3-gram: abc = 97*257**2 + 98*257 + 99 = 6432038. No 4- or 5-grams.
    assert bucket(b"ab") == ((25027 + (2 << 48)) * 0x9E3779B97F4A7C15 % 2**64) >> 46
    assert bucket(b"abc") == ((6432038 + (3 << 48)) * 0x9E3779B97F4A7C15 % 2**64) >> 46
    got = buckets(b"abc").tolist()
    assert got == [bucket(b"ab"), bucket(b"bc"), bucket(b"abc")]


def test_counts_lowercase_and_all_ngram_lengths():
    # "ABAB" lower-cased -> "abab": 2-grams ab, ba, ab; 3-grams aba, bab; 4-gram abab; no 5-gram.
    f = featurise("ABAB")
    expect: dict[int, int] = {}
    for g in (b"ab", b"ba", b"ab", b"aba", b"bab", b"abab"):
        expect[bucket(g)] = expect.get(bucket(g), 0) + 1
    assert f.idx.dtype == np.int64 and f.cnt.dtype == np.float32
    assert f.idx.tolist() == sorted(expect)
    assert f.cnt.tolist() == [expect[k] for k in sorted(expect)]


def test_utf8_bytes_are_hashed():
    # "é" is two UTF-8 bytes (0xC3 0xA9): one 2-gram only.
    assert featurise("é").idx.tolist() == [bucket(bytes([0xC3, 0xA9]))]


def test_dense_statistics_by_hand():
    t = "Is 1+1=2?\n```x```"
    # 17 chars, 1 newline, 1 '?', a code fence; bytes: digits 1,1,2 -> 3/17; symbols + = -> 2/17.
    f = featurise(t)
    assert f.dense.shape == (1, 6) and f.dense.dtype == np.float32
    expect = [math.log1p(17), math.log1p(1), math.log1p(1), 1.0, 3 / 17, 2 / 17]
    assert np.allclose(f.dense[0], expect, rtol=0, atol=1e-6)


def test_empty_text():
    f = featurise("")
    assert f.idx.size == 0 and f.cnt.size == 0
    assert f.dense.tolist() == [[0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]


def test_long_text_is_cut_to_head_and_tail():
    t = "a" * 3072 + "b" * 5000 + "c" * 1024
    assert bound(t) == "a" * 3072 + "\n" + "c" * 1024
    assert bound("x" * 4096) == "x" * 4096  # at the limit: unchanged
    f = featurise(t)
    # The n-grams come from the bounded text only; no 'b' n-gram remains.
    assert bucket(b"ab") not in f.idx.tolist() and bucket(b"bb") not in f.idx.tolist()
    assert bucket(b"a\n") in f.idx.tolist() and bucket(b"\nc") in f.idx.tolist()
    # aaaaa: 3072 - 5 + 1 = 3068 occurrences of the 5-gram in the head.
    assert f.cnt[f.idx.tolist().index(bucket(b"aaaaa"))] == 3068
    # Length statistics use the full text: 9,096 characters.
    assert math.isclose(float(f.dense[0, 0]), math.log1p(9096), rel_tol=1e-6)
