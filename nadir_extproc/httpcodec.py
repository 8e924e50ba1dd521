"""HTTP codec helpers of the request path: body content-encodings (bounded inflate),
``accept-encoding`` narrowing, and a parameter taken out of a ``:path`` query (an API key must not
stay in a URL; ``tags.api_key`` reads it the same way).

Pure functions; never raise on bad input.
"""

from __future__ import annotations

import io
import zlib
from urllib.parse import unquote

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
