"""Refusals we answer ourselves (not a budget's 429): an ``ImmediateResponse`` whose body is in the
API's own error format, so the official SDKs raise their usual error class with our message.

- 413 ``request_too_large``: a request body above ``Settings.max_request_bytes`` (HTTP/2 clients are
  not capped by Envoy's ``per_connection_buffer_limit_bytes``, extproc-facts "Size limits").

Shapes: each dialect's ``refusal_body`` (OpenAI ``{"error": {"message", "type":
"invalid_request_error", "param": null, "code"}}``; Anthropic ``{"type": "error", "error":
{"type": "request_too_large", "message"}}``; Gemini ``google.rpc.Status`` JSON).
"""

from __future__ import annotations

from nadir_extproc import dialects, headers as hn, protocol as p
from nadir_extproc.pb import external_processor_pb2 as ep, http_status_pb2 as hs

#: The unpriced reason (and ImmediateResponse ``details``) of a body over the size limit, ours or
#: Envoy's own 413 (``processor`` tells them apart: Envoy's comes before the body phase).
TOO_LARGE = "request_too_large"


def error_body(dialect: str | None, status: int, code: str, message: str) -> bytes:
    """``message`` in the error format of ``dialect`` (a ``DIALECTS`` name; OpenAI's shape when
    unknown): ``Dialect.refusal_body``."""
    return dialects.get(dialect).refusal_body(status, code, message)


def too_large(dialect: str | None, size: int, limit: int) -> p.ProcessingResponse:
    """The 413 reply for a ``size``-byte request body over ``limit`` bytes; ``x-should-retry:
    false`` so the SDKs do not resend the same body."""
    msg = f"nadir: request body of {size} bytes is over the gateway's limit of {limit} bytes"
    r = p.ProcessingResponse()
    r.immediate_response.CopyFrom(
        ep.ImmediateResponse(
            status=hs.HttpStatus(code=hs.PayloadTooLarge),
            headers=p.header_mutation({"content-type": "application/json", "x-should-retry": "false",
                                       hn.UNPRICED: TOO_LARGE}),
            body=error_body(dialect, 413, TOO_LARGE, msg),
            details="nadir_" + TOO_LARGE,
        )
    )
    return r
