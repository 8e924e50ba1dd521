"""Request context for pricing, read from a response body: the service tier that served it, and
whether it is a batch result.

Where each provider reports the tier *actually used* (not the one requested):

- OpenAI Chat Completions and Responses: top-level ``service_tier`` (``"default"``, ``"flex"``,
  ``"priority"``, ``"scale"``); OpenAI-compatible servers echo it (Groq ``"on_demand"``).
- Anthropic Messages: ``usage.service_tier`` (``"standard"``, ``"priority"``, ``"batch"``).
- Gemini: ``usageMetadata.serviceTier`` (``"standard"``, ``"flex"``, ``"priority"``); Vertex AI:
  ``usageMetadata.trafficType`` (``nadir_extproc.dialects.gemini.served_tier``).

Batch results arrive wrapped, one JSON line each: OpenAI Batch output
``{"custom_id", "response": {"status_code", "body": <chat/responses object>}}`` and Anthropic
Message Batches results ``{"custom_id", "result": {"type": "succeeded", "message": <message>}}``.
"""

from __future__ import annotations

from typing import Any


def served_context(body: Any) -> tuple[str | None, bool]:
    """``(service_tier, batch)`` for ``price(…, service_tier=, batch=)`` from a response body.

    ``service_tier`` is the raw tier string the response reports (``None`` when absent; pricing
    normalises ``default``/``standard``/``on_demand`` to the standard rates). Anthropic's
    ``usage.service_tier == "batch"`` becomes ``(None, True)``.
    """
    if not isinstance(body, dict):
        return None, False
    tier = body.get("service_tier")
    if not isinstance(tier, str):
        u = body.get("usage")
        if isinstance(u, dict) and isinstance(u.get("service_tier"), str):
            tier = u["service_tier"]
        elif isinstance(body.get("usageMetadata"), dict):
            from nadir_extproc.dialects.gemini import served_tier

            tier = served_tier(body["usageMetadata"])
    return tier_context(tier if isinstance(tier, str) else None)


def tier_context(tier: str | None) -> tuple[str | None, bool]:
    """``(service_tier, batch)`` from a raw reported tier string: ``"batch"`` (Anthropic) means
    batch rates, anything else is passed on as the tier; ``None`` stays ``(None, False)``."""
    if tier is None:
        return None, False
    if tier.strip().lower() == "batch":
        return None, True
    return tier, False


def unwrap_batch_result(obj: Any) -> tuple[Any, int | None] | None:
    """The response body inside one batch-result line, and its HTTP status when the wrapper says
    (``None`` for Anthropic, where ``result.type`` other than ``"succeeded"`` gives ``(result, 500)``).

    Returns ``None`` when ``obj`` is not a batch-result wrapper.
    """
    if not isinstance(obj, dict) or "custom_id" not in obj:
        return None
    resp = obj.get("response")
    if isinstance(resp, dict) and "body" in resp:
        status = resp.get("status_code")
        return resp.get("body"), status if isinstance(status, int) else None
    if isinstance(obj.get("error"), dict) and resp is None:
        return {"error": obj["error"]}, 500
    result = obj.get("result")
    if isinstance(result, dict):
        if result.get("type") == "succeeded" and isinstance(result.get("message"), dict):
            return result["message"], None
        return result, 500
    return None
