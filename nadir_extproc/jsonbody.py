"""A JSON request body parsed once, with the byte span of every top-level value.

The request path reads a body (``dict``) and then changes one or two top-level values (``model``,
``stream_options``) while keeping every other byte as the client sent it. ``parse`` does both jobs
in one pass: the top-level object is walked here (a few keys) and each value is parsed by the C
scanner that ``json.loads`` itself uses (``json.scanner.c_make_scanner``), which also tells where
the value ends. Cost is that of ``json.loads`` — linear in the body, a few ms for 6 MB — and a
rewrite is then a slice and a join (shared case 37: the previous regex walk over every string
token took 0.22 µs per byte, 1.4 s for 5.94 MB, past Envoy's ``message_timeout``; its string
pattern ``"(?:[^"\\]|\\.)*"`` pushed a backtracking mark per character in CPython's ``re``, so
the cost per byte grew with the string: 0.12 µs/B at 1 MB, 0.19 µs/B at 8 MB).

Semantics are ``json.loads``'s: the same scanner, the same accepted input (``NaN``, duplicate keys
— the last one wins in the ``dict``), the same errors (``ValueError``). Bytes are decoded like
``json.loads`` decodes them (UTF-8, ``surrogatepass``, an optional UTF-8 BOM); UTF-16/32 bodies are
parsed by ``json.loads`` and carry no spans (nothing can be rewritten in place).
"""

from __future__ import annotations

import json
import re
from json.decoder import scanstring
from typing import Any

_scan_once = json.JSONDecoder().scan_once  # the C scanner (json.scanner.c_make_scanner)
_WS = re.compile(r"[ \t\n\r]*")
_ws = _WS.match
_WSC = " \t\n\r"
_BOM = b"\xef\xbb\xbf"


class JsonObject(dict):
    """A parsed top-level JSON object (a ``dict``) that remembers where its values sit in ``raw``.

    ``spans[key]`` lists ``(start, end)`` offsets (into the decoded text) of every occurrence of
    ``key`` at the top level, duplicates included, in body order. Use ``byte_spans`` for offsets
    into ``raw``.
    """

    __slots__ = ("raw", "text", "spans", "_skip", "_ascii")

    def byte_spans(self, key: str) -> list[tuple[int, int, bool]]:
        """``(start, end, is_string)`` byte offsets in ``raw`` of each top-level value of ``key``
        (empty when absent). ``is_string``: the value is a JSON string."""
        out = []
        text = self.text
        base = self._skip
        for a, b in self.spans.get(key, ()):
            is_str = text[a] == '"'
            if self._ascii:
                out.append((a + base, b + base, is_str))
            else:
                # Non-ASCII body: UTF-8 length of the text before each offset (C speed, linear).
                ba = len(text[:a].encode("utf-8", "surrogatepass")) + base
                bb = ba + len(text[a:b].encode("utf-8", "surrogatepass"))
                out.append((ba, bb, is_str))
        return out


def _fail(msg: str, text: str, i: int) -> json.JSONDecodeError:
    return json.JSONDecodeError(msg, text, min(i, len(text)))


def parse(raw: bytes) -> Any:
    """``json.loads(raw)``, except that a top-level object comes back as a ``JsonObject`` that
    knows its values' spans. Raises ``ValueError`` (``JSONDecodeError``/``UnicodeDecodeError``)
    exactly where ``json.loads`` would."""
    if raw[:3] == _BOM:
        skip = 3
    elif len(raw) >= 2 and (raw[0] == 0 or raw[1] == 0):
        return json.loads(raw)  # UTF-16/32 (json.loads detects it): no in-place rewrite
    else:
        skip = 0
    is_ascii = raw.isascii()
    text = (raw[skip:] if skip else raw).decode("utf-8", "surrogatepass")
    n = len(text)
    i = _ws(text, 0).end()
    if i >= n or text[i] != "{":
        return json.loads(text)  # not an object: json.loads's own value or error
    obj = JsonObject()
    spans: dict[str, list[tuple[int, int]]] = {}
    # Whitespace is skipped with the regex only where there is some (compact JSON has none).
    try:
        i += 1
        if text[i] in _WSC:
            i = _ws(text, i).end()
        if text[i] == "}":
            i += 1
        else:
            while True:
                if text[i] != '"':
                    raise _fail("Expecting property name enclosed in double quotes", text, i)
                key, i = scanstring(text, i + 1)
                if text[i] in _WSC:
                    i = _ws(text, i).end()
                if text[i] != ":":
                    raise _fail("Expecting ':' delimiter", text, i)
                i += 1
                if text[i] in _WSC:
                    i = _ws(text, i).end()
                try:
                    value, end = _scan_once(text, i)
                except StopIteration as e:
                    raise _fail("Expecting value", text, e.value) from None
                obj[key] = value
                sp = spans.get(key)
                if sp is None:
                    spans[key] = [(i, end)]
                else:
                    sp.append((i, end))
                i = end
                if text[i] in _WSC:
                    i = _ws(text, i).end()
                c = text[i]
                i += 1
                if c == ",":
                    if text[i] in _WSC:
                        i = _ws(text, i).end()
                    continue
                if c == "}":
                    break
                raise _fail("Expecting ',' delimiter", text, i - 1)
    except IndexError:
        raise _fail("Unterminated object", text, n) from None
    if _ws(text, i).end() != n:
        raise _fail("Extra data", text, i)
    obj.raw = raw
    obj.text = text
    obj.spans = spans
    obj._skip = skip  # byte offset of text[0] in raw (a UTF-8 BOM)
    obj._ascii = is_ascii  # text offsets are byte offsets (minus the BOM)
    return obj


def replace_values(raw: bytes, spans: list[tuple[int, int]], new: bytes) -> bytes:
    """``raw`` with each byte span (sorted, not overlapping) replaced by ``new``."""
    view = memoryview(raw)  # slices without copies: the join is the only copy of the body
    out = []
    prev = 0
    for a, b in spans:
        out.append(view[prev:a])
        out.append(new)
        prev = b
    out.append(view[prev:])
    return b"".join(out)
