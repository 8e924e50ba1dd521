"""Budgets and runaway detection: windowed spend per rule and scope value, reservations at
admission, shared across a fleet in Redis or kept in memory.

Rules come from ``Settings.budgets`` (``config.BudgetRule``): a scope (``key_id``, ``trace``, or a
tag such as ``team``/``feature``/``user``/``session``), an optional value to ``match``, a sliding
window (seconds), a limit in USD and an action. A runaway rule is the same thing with a short
window on ``trace``/``session``/``key_id`` (e.g. "one session above 2 USD within 5 minutes").

Modules: ``rules`` (the decision and the verdict), ``estimate`` (the most a request may cost),
``memory`` (this process's totals), ``redis_store`` (shared totals, atomic Lua scripts), ``core``
(``Budgets``: admit / settle, fallback and recovery). This module keeps the request-facing pieces:
scope values and the 429 reply.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from nadir_extproc.budgets.rules import OK, Verdict

#: Response header: least remaining budget (USD) over the rules that apply to the request.
H_REMAINING = "x-nadir-budget-remaining"
#: Response header on a 429: the rule that blocked.
H_RULE = "x-nadir-budget-rule"

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def trace_id(headers: Mapping[str, str]) -> str | None:
    """The W3C ``traceparent`` trace id (32 lower-case hex) of a request, ``None`` if absent,
    malformed or all zeros."""
    m = _TRACEPARENT.match(headers.get("traceparent", "").strip().lower())
    if not m or m.group(1) == "0" * 32:
        return None
    return m.group(1)


def scope_values(tags: Mapping[str, str], key_id: str | None, trace: str | None) -> dict[str, str]:
    """The values a rule scope can refer to: every tag, plus ``key_id`` and ``trace``."""
    out = dict(tags)
    if key_id:
        out["key_id"] = key_id
    if trace:
        out["trace"] = trace
    return out


def block_body(dialect: str | None, message: str) -> bytes:
    """The 429 body in the provider's own error format, so the official SDKs raise their
    rate-limit error (``openai.RateLimitError`` / ``anthropic.RateLimitError``) with ``message``.

    Shapes: OpenAI (``openai_*`` dialects, and the default)
    ``{"error": {"message", "type": "rate_limit_exceeded", "param": null, "code": "budget_exceeded"}}``;
    Anthropic ``{"type": "error", "error": {"type": "rate_limit_error", "message"}}``; Gemini
    (``gemini``) ``{"error": {"code": 429, "message", "status": "RESOURCE_EXHAUSTED"}}`` (each as
    the provider documents its 429 errors; Google: the ``google.rpc.Status`` JSON of AIP-193)."""
    import json

    if dialect is not None and dialect.startswith("anthropic"):
        doc: dict[str, Any] = {"type": "error", "error": {"type": "rate_limit_error", "message": message}}
    elif dialect == "gemini":
        doc = {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED"}}
    else:
        doc = {"error": {"message": message, "type": "rate_limit_exceeded", "param": None, "code": "budget_exceeded"}}
    return json.dumps(doc).encode("utf-8")


def block_reply(dialect: str | None, v: Verdict) -> Any:
    """The ext_proc ``ProcessingResponse`` for a blocked request: an ``ImmediateResponse`` 429
    (Envoy answers the client with it; the provider is not called) with ``block_body`` as body,
    ``content-type: application/json``, ``x-should-retry: false`` (the official SDKs then raise at
    once instead of retrying), ``retry-after`` (seconds until the window allows spend again, when
    known), ``x-nadir-budget-rule`` and ``x-nadir-budget-remaining``."""
    from nadir_extproc import protocol as p
    from nadir_extproc.pb import external_processor_pb2 as ep, http_status_pb2 as hs
    from nadir_extproc.pricing.money import format_usd

    headers = {"content-type": "application/json", "x-should-retry": "false", H_RULE: v.rule or ""}
    if v.retry_after_s:
        headers["retry-after"] = str(v.retry_after_s)
    if v.remaining_usd is not None:
        headers[H_REMAINING] = format_usd(v.remaining_usd)
    r = p.ProcessingResponse()
    r.immediate_response.CopyFrom(
        ep.ImmediateResponse(
            status=hs.HttpStatus(code=hs.TooManyRequests),
            headers=p.header_mutation(headers),
            body=block_body(dialect, v.message),
            details="nadir_budget_exceeded",
        )
    )
    return r


from nadir_extproc.budgets.core import Admission, Budgets, Reservation  # noqa: E402  (core imports scope_values from here)

__all__ = ["H_REMAINING", "H_RULE", "OK", "Admission", "Budgets", "Reservation", "Verdict", "block_body", "block_reply",
           "scope_values", "trace_id"]
