"""Batch results: the response inside a batch-result line, and its status. (The service tier a
response reports is its dialect's to read: ``Dialect.response_info``.)

Batch results arrive wrapped, one JSON line each: OpenAI Batch output
``{"custom_id", "response": {"status_code", "body": <chat/responses object>}}`` and Anthropic
Message Batches results ``{"custom_id", "result": {"type": "succeeded", "message": <message>}}``.
"""

from __future__ import annotations

from typing import Any


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
