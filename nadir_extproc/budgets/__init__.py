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

from collections.abc import Mapping
from typing import Any

from nadir_extproc import headers as hn
from nadir_extproc.budgets.rules import OK, Verdict
from nadir_extproc.traceparent import trace_id_of

H_REMAINING = hn.BUDGET_REMAINING
H_RULE = hn.BUDGET_RULE


def trace_id(headers: Mapping[str, str]) -> str | None:
    """The W3C ``traceparent`` trace id (32 lower-case hex) of a request, ``None`` if absent,
    malformed or all zeros (``nadir_extproc.traceparent``)."""
    return trace_id_of(headers.get("traceparent"))


def scope_values(tags: Mapping[str, str], key_id: str | None, trace: str | None) -> dict[str, str]:
    """The values a rule scope can refer to: every tag, plus ``key_id`` and ``trace``."""
    out = dict(tags)
    if key_id:
        out["key_id"] = key_id
    if trace:
        out["trace"] = trace
    return out


def block_body(dialect: str | None, message: str) -> bytes:
    """The 429 body in the API's own error format (``Dialect.error_body``), so the official SDKs
    raise their rate-limit error (``openai.RateLimitError`` / ``anthropic.RateLimitError``) with
    ``message``. An unknown dialect gets OpenAI's shape."""
    from nadir_extproc import dialects

    return dialects.get(dialect).error_body(message)


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
