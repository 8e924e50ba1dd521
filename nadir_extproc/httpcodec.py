"""HTTP codec helpers of the request path: body content-encodings (bounded inflate),
``accept-encoding`` narrowing, and a parameter taken out of a ``:path`` query (an API key must not
stay in a URL; ``tags.api_key`` reads it the same way).

Pure functions; never raise on bad input.
"""

from __future__ import annotations

import io
import zlib
from typing import Any
from urllib.parse import unquote

from nadir_extproc import jsonbody
from nadir_extproc.stats import count

try:  # br and zstd need their libraries (dependencies; optional so a trimmed image still starts)
    import brotli
except ImportError:  # pragma: no cover
    brotli = None
try:
    import zstandard
except ImportError:  # pragma: no cover
    zstandard = None

#: Content encodings we can decode to read a body (``accept-encoding`` keeps only these).
DECODABLE = frozenset({"gzip", "x-gzip", "deflate", "identity"}
                      | ({"br"} if brotli is not None else set())
                      | ({"zstd"} if zstandard is not None else set()))


def parse_request(raw: bytes, encoding: str, max_bytes: int) -> tuple[bytes, Any] | None:
    """A request body as received -> ``(its decoded bytes, its JSON parsed once by
    ``jsonbody.parse`` or ``None`` when it is not JSON)``; ``None`` when its ``content-encoding``
    (lower-cased) cannot be decoded within ``max_bytes``. Counted: ``request_undecodable``,
    ``request_not_json``. Never raises."""
    if encoding and encoding != "identity":
        decoded = decode_body(raw, encoding, max_bytes)
        if decoded is None:
            count("request_undecodable", encoding)
            return None
        raw = decoded
    try:
        return raw, jsonbody.parse(raw)  # the JsonObject keeps value spans for a model rewrite
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
        count("request_not_json")
        return raw, None


def narrow_accept_encoding(value: str) -> str | None:
    """``accept-encoding`` without encodings we cannot decode; ``None`` if nothing to change."""
    parts = [x.strip() for x in value.split(",") if x.strip()]
    keep = [x for x in parts if x.split(";")[0].strip().lower() in DECODABLE]
    if len(keep) == len(parts):
        return None
    return ", ".join(keep) or "identity"


def take_query_param(path: str, name: str) -> tuple[str, str] | None:
    """``(path without the name= parameter, its URL-decoded value)`` when ``path``'s query has a
    non-empty one (the first); else ``None``. Other parameters are kept byte for byte, in order."""
    q = path.find("?")
    eq = name + "="
    if q < 0 or eq not in path[q:]:
        return None
    value = None
    keep = []
    for part in path[q + 1 :].split("&"):
        if part.startswith(eq) and value is None:
            value = unquote(part[len(eq):])
        else:
            keep.append(part)
    if not value:
        return None
    return (path[:q] + ("?" + "&".join(keep) if keep else "")), value


def query_param(path: str, name: str) -> str | None:
    """The URL-decoded value of the first ``name=`` parameter of ``path``'s query, when non-empty."""
    got = take_query_param(path, name)
    return got[1] if got is not None else None


#: Default bound on a decoded (decompressed) body; the processor passes ``max_message_bytes``
#: (16 MiB: a rewritten body must fit in one gRPC reply anyway). A compressed body within Envoy's
#: 8 MiB buffer limit can inflate without bound (a "zip bomb": 8 MiB of gzip is ~8 GiB of zeros);
#: past the bound we stop at once, pass the body through untouched and count it.
MAX_DECODED_BYTES = 16 * 1024 * 1024


def _inflate(body: bytes, wbits: int, limit: int) -> bytes | None:
    """Decompress every member of a zlib/gzip/raw-deflate stream, at most ``limit`` bytes out;
    ``None`` when the output would be larger. Raises ``zlib.error`` on corrupt input."""
    out: list[bytes] = []
    size = 0
    data = body
    while data:
        d = zlib.decompressobj(wbits)
        chunk = d.decompress(data, limit - size + 1)
        size += len(chunk)
        if size > limit:
            return None
        out.append(chunk)
        if not d.eof:
            if d.unconsumed_tail:
                return None  # stopped by max_length: more output than the limit
            raise zlib.error("truncated stream")
        data = d.unused_data  # gzip allows several members one after another
        if wbits != 31:
            break
    return b"".join(out)


def decode_body(body: bytes, encoding: str, limit: int = MAX_DECODED_BYTES) -> bytes | None:
    """Decode a body by its ``content-encoding``; ``None`` if we cannot (e.g. br, zstd, corrupt
    gzip) or if it would inflate beyond ``limit`` bytes (counted as ``body_inflate_limit``).
    Never raises. Linear in the output, which is bounded."""
    enc = encoding.strip().lower()
    if not enc or enc == "identity":
        return body
    try:
        if enc in ("gzip", "x-gzip"):
            out = _inflate(body, 31, limit)
        elif enc == "deflate":
            try:
                out = _inflate(body, 15, limit)
            except zlib.error:
                out = _inflate(body, -zlib.MAX_WBITS, limit)
        elif enc == "br" and brotli is not None:
            out = _unbrotli(body, limit)
        elif enc == "zstd" and zstandard is not None:
            out = _unzstd(body, limit)
        else:
            return None
    except (OSError, EOFError, ValueError, zlib.error):
        return None
    except Exception as e:  # noqa: BLE001 — brotli.error / zstandard.ZstdError: a corrupt body
        if type(e).__name__ in ("error", "ZstdError"):
            return None
        raise
    if out is None:
        count("body_inflate_limit", enc)
    return out


def _unbrotli(body: bytes, limit: int) -> bytes | None:
    """Brotli (RFC 7932), at most ``limit`` bytes out (``Decompressor.process``'s
    ``output_buffer_limit``, brotli >= 1.2); ``None`` past it. Raises ``brotli.error`` on corrupt
    or truncated input."""
    d = brotli.Decompressor()
    out = [d.process(body, output_buffer_limit=limit + 1)]
    size = len(out[0])
    while size <= limit and not d.is_finished() and not d.can_accept_more_data():
        chunk = d.process(b"", output_buffer_limit=limit + 1 - size)
        if not chunk:
            break
        out.append(chunk)
        size += len(chunk)
    if size > limit:
        return None
    if not d.is_finished():
        raise ValueError("truncated brotli stream")
    return b"".join(out)


def _unzstd(body: bytes, limit: int) -> bytes | None:
    """Zstandard (RFC 8878), every frame, at most ``limit`` bytes out (a bounded ``read``);
    ``None`` past it. Raises ``zstandard.ZstdError`` on corrupt input."""
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body), read_across_frames=True)
    out = reader.read(limit + 1)
    if len(out) > limit:
        return None
    # Within the bound: check every frame is whole (a cut body reads short without an error).
    data = body
    while data:
        d = zstandard.ZstdDecompressor().decompressobj()
        d.decompress(data)
        if not d.eof:
            raise ValueError("truncated zstd stream")
        data = d.unused_data
    return out


#: zstd input is fed in slices this small so one call's output stays bounded: a zstd block header
#: of 3 bytes can stand for 128 KiB (an RLE block), so 64 input bytes yield at most ~2.7 MiB.
_ZSTD_SLICE = 64
#: gzip / deflate / br output is taken in pieces of at most this many bytes, checked one by one.
_STEP = 256 * 1024
#: A stream is a decompression bomb once it has decoded more than ``BOMB_FLOOR_BYTES`` at more than
#: ``MAX_STREAM_RATIO``:1 (decoded / compressed bytes so far). SSE JSON compresses ~5-30:1 (a
#: token per event, each event different), gzip's own ceiling is ~1032:1; caught at ~1 MiB, the
#: bomb costs the event loop milliseconds, well inside Envoy's 0.5 s ``message_timeout``.
MAX_STREAM_RATIO = 100
BOMB_FLOOR_BYTES = 1024 * 1024


class StreamDecoder:
    """Incremental decoder of a streamed body's ``content-encoding`` (gzip, deflate, br, zstd —
    those in ``DECODABLE``): ``feed(chunk)`` returns the bytes it decodes to, or ``None`` once
    decoding has failed: corrupt input, or a decompression bomb — past ``BOMB_FLOOR_BYTES`` at
    more than ``MAX_STREAM_RATIO``:1, or one chunk decoding to more than ``limit`` bytes (counted
    as ``body_inflate_limit``); after ``None`` it stays failed. Memory is bounded by ``limit`` per
    chunk. gzip: every member (RFC 1952 allows several back to back); deflate: zlib-wrapped
    (RFC 1950, what the HTTP token means) or raw (RFC 1951, what some servers send), told apart by
    the first two bytes; br: RFC 7932; zstd: RFC 8878, every frame."""

    __slots__ = ("encoding", "limit", "_d", "failed", "_head", "_in", "_out", "_chunk_out")

    def __init__(self, encoding: str, limit: int = MAX_DECODED_BYTES) -> None:
        self.encoding = encoding.strip().lower()
        self.limit = limit
        self.failed = False
        self._head = b""  # deflate: the first bytes, until the wrapper can be told
        self._in = 0  # compressed bytes consumed
        self._out = 0  # bytes decoded
        self._chunk_out = 0  # bytes decoded from the current chunk
        self._d: Any = None
        if self.encoding in ("gzip", "x-gzip"):
            self._d = zlib.decompressobj(31)
        elif self.encoding == "br" and brotli is not None:
            self._d = brotli.Decompressor()
        elif self.encoding == "zstd" and zstandard is not None:
            self._d = zstandard.ZstdDecompressor().decompressobj()
        elif self.encoding != "deflate":
            raise ValueError(f"not a decodable stream encoding: {encoding!r}")

    def feed(self, chunk: bytes) -> bytes | None:
        if self.failed:
            return None
        self._chunk_out = 0
        try:
            out = self._feed(chunk)
        except Exception as e:  # noqa: BLE001 — zlib.error, brotli.error, zstandard.ZstdError: corrupt input
            if not isinstance(e, (zlib.error, ValueError, EOFError)) and type(e).__name__ not in ("error", "ZstdError"):
                raise
            out = None
        if out is None:
            self.failed = True
        return out

    def _ok(self, consumed: int, piece: bytes) -> bool:
        """Account one decoded piece; False (counted) when it makes the stream a bomb."""
        self._in += consumed
        self._out += len(piece)
        self._chunk_out += len(piece)
        if self._chunk_out > self.limit or (self._out > BOMB_FLOOR_BYTES and self._out > MAX_STREAM_RATIO * self._in):
            count("body_inflate_limit", self.encoding)
            return False
        return True

    def _feed(self, chunk: bytes) -> bytes | None:
        enc = self.encoding
        parts: list[bytes] = []
        if enc == "br":
            # brotli takes all input at once and keeps what it could not output yet; its
            # can_accept_more_data() says True even then (brotli 1.2.1), so drain until it is dry.
            piece = self._d.process(chunk, output_buffer_limit=_STEP)
            consumed = len(chunk)
            while piece or consumed:
                if not self._ok(consumed, piece):
                    return None
                parts.append(piece)
                consumed = 0
                if self._d.is_finished():
                    break
                piece = self._d.process(b"", output_buffer_limit=_STEP)
            return b"".join(parts)
        if enc == "zstd":
            for i in range(0, len(chunk), _ZSTD_SLICE):
                data = chunk[i:i + _ZSTD_SLICE]
                while data:
                    piece = self._d.decompress(data)
                    rest = self._d.unused_data if self._d.eof else b""
                    if not self._ok(len(data) - len(rest), piece):
                        return None
                    parts.append(piece)
                    data = b""
                    if self._d.eof:  # a frame ended: the next one (if any) needs a new object
                        data = rest
                        self._d = zstandard.ZstdDecompressor().decompressobj()
            return b"".join(parts)
        if enc == "deflate" and self._d is None:
            self._head += chunk
            if len(self._head) < 2:
                return b""
            b0, b1 = self._head[0], self._head[1]
            zlib_wrapped = b0 & 0x0F == 8 and (b0 << 8 | b1) % 31 == 0
            self._d = zlib.decompressobj(15 if zlib_wrapped else -zlib.MAX_WBITS)
            chunk, self._head = self._head, b""
        # gzip / deflate (zlib): output in bounded pieces; gzip may have several members
        data = chunk
        while True:
            piece = self._d.decompress(data, _STEP)
            tail = self._d.unconsumed_tail
            rest = tail or (self._d.unused_data if self._d.eof else b"")
            if not self._ok(len(data) - len(rest), piece):
                return None
            parts.append(piece)
            if tail or (len(piece) == _STEP and not self._d.eof):
                data = tail  # more output is waiting (b"": drain what zlib holds)
            elif self._d.eof and enc != "deflate" and self._d.unused_data:
                data = self._d.unused_data
                self._d = zlib.decompressobj(31)
            else:
                return b"".join(parts)
