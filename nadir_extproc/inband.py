"""The in-band cost of a streamed response: written by ``nadir_extproc.stream``, read by clients.

Response headers leave before a stream's usage exists, so the ``x-nadir-*`` fields travel inside
the stream, only where that API's real clients tolerate them (checked client by client by
``tests/compat``):

- **SSE comment block** (``: x-nadir-name=value`` lines ended by a blank line, right before the
  terminal event): Chat Completions (before ``data: [DONE]``), Responses (before
  ``response.completed``), Anthropic Messages (before ``message_stop``). Comments are ignored by
  the SSE parsers of those APIs' clients (WHATWG HTML "Server-sent events" 9.2.6).
- **Never for Gemini** (``Dialect.sse_comments = False``): Google's Python SDK reads only
  ``data: `` lines and takes any other line for an error body (google-genai 3.6.1 raises
  ``UnknownApiResponseError``); ``@google/genai`` 3.3.0 skips whole non-``data:`` events.
- **Opt-in JSON object** ``"nadir": {"cost_usd": …}`` (request header ``x-nadir-cost-in-body: 1``),
  always on an event the client expects anyway: Chat — the usage chunk when the client asked
  for ``include_usage``, else the last chunk with a ``finish_reason`` (the usage chunk the
  sidecar asked for is removed either way); Responses — ``response.completed``; Anthropic —
  ``message_delta``; Gemini — the last chunk (the one with ``finishReason`` and
  ``usageMetadata``).
"""

from __future__ import annotations

PREFIX = b": x-nadir-"


def format_block(fields: dict[str, str], newline: bytes = b"\n") -> bytes:
    """``fields`` (header name -> value, latin-1 text) as one SSE comment block with ``newline``
    line endings, ended by a blank line."""
    lines = [f": {k}={v}".encode("latin-1") for k, v in fields.items()]
    return newline.join(lines) + newline + newline


def parse_fields(stream: bytes) -> dict[str, str]:
    """The ``x-nadir-*`` fields of every in-band comment line in a streamed body (name -> value);
    empty when the stream has none."""
    out: dict[str, str] = {}
    for line in stream.splitlines():
        if line.startswith(PREFIX):
            k, _, v = line[2:].decode("latin-1").partition("=")
            out[k] = v
    return out
