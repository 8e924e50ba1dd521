"""The featuriser's exact rule (nadir_extproc.routing.features docstring): token ids from the shipped
tokenizer, checked against the tokenizer's own vocabulary, and dense statistics worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nadir_extproc.routing.features import (
    DEFAULT_TOKENIZER_PATH,
    DENSE_NAMES,
    bound,
    featurise,
    featurise_many,
    load_tokenizer,
)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def test_constants_are_the_documented_ones():
    assert DENSE_NAMES == ("log_chars", "log_newlines", "log_questions", "code_fence", "digit_share", "symbol_share")
    assert DEFAULT_TOKENIZER_PATH.name == "tokenizer.json" and DEFAULT_TOKENIZER_PATH.parent.name == "model"


def test_ids_are_the_vocabulary_ids_of_the_words(tok):
    # SentencePiece style: a word after a space (or at the start) carries the "▁" prefix; no <s> is added.
    f = featurise("Hello world", tok)
    assert f.ids.dtype == np.int64
    assert f.ids.tolist() == [tok.token_to_id("▁Hello"), tok.token_to_id("▁world")]
    assert tok.token_to_id("<s>") not in f.ids.tolist()


def test_digits_are_single_tokens_and_newlines_are_bytes(tok):
    # The Llama 2 vocabulary has single digits only; "\n" is the byte-fallback token <0x0A>.
    ids = featurise("12\nab", tok).ids.tolist()
    assert ids[:3] == [tok.token_to_id("▁"), tok.token_to_id("1"), tok.token_to_id("2")] or ids[:2] == [
        tok.token_to_id("▁1"), tok.token_to_id("2")]
    assert tok.token_to_id("<0x0A>") in ids


def test_batch_equals_one_by_one(tok):
    texts = ["", "hi", "Why does this fail?\n```python\nprint(1/0)\n```", "x" * 5000, "日本語 ✓ é"]
    many = featurise_many(texts, tok)
    for t, f in zip(texts, many):
        one = featurise(t, tok)
        assert f.ids.tolist() == one.ids.tolist() and f.dense.tolist() == one.dense.tolist()


def test_dense_statistics_by_hand(tok):
    t = "Is 1+1=2?\n```x```"
    # 17 chars, 1 newline, 1 '?', a code fence; bytes: digits 1,1,2 -> 3/17; symbols + = -> 2/17.
    f = featurise(t, tok)
    assert f.dense.shape == (1, 6) and f.dense.dtype == np.float32
    expect = [math.log1p(17), math.log1p(1), math.log1p(1), 1.0, 3 / 17, 2 / 17]
    assert np.allclose(f.dense[0], expect, rtol=0, atol=1e-6)


def test_empty_text(tok):
    f = featurise("", tok)
    assert f.ids.size == 0 and f.ids.dtype == np.int64
    assert f.dense.tolist() == [[0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]


def test_long_text_is_cut_to_head_and_tail(tok):
    t = "alpha " * 512 + "bravo " * 900 + "charlie " * 128  # 3072 + 5400 + 1024 characters
    assert len(t) == 3072 + 5400 + 1024
    assert bound(t) == t[:3072] + "\n" + t[-1024:]
    assert bound("x" * 4096) == "x" * 4096  # at the limit: unchanged
    f = featurise(t, tok)
    words = set(tok.decode(f.ids.tolist()).split())
    assert "bravo" not in words and {"alpha", "charlie"} <= words
    # Length statistics use the full text.
    assert math.isclose(float(f.dense[0, 0]), math.log1p(len(t)), rel_tol=1e-6)


def test_missing_tokenizer_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_tokenizer(tmp_path / "nope.json")
