"""Groq (api.groq.com/openai/v1): OpenAI Chat Completions.

Where Groq differs (shared case 28): in streams, the usage of the request can arrive only inside the
vendor field ``x_groq.usage`` of the last chunk (``prompt_tokens`` / ``completion_tokens`` plus
timings), not as a top-level ``usage`` chunk; the last one wins. Groq's JSON bodies carry a
top-level ``usage`` (recorded response 41). Service tier: Groq reports ``"on_demand"`` (standard),
``"flex"``, ``"performance"``. Source: Groq API reference, "Chat" (``x_groq``), and the recorded
Groq stream in shared case 28.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def usage_object(chunk: Mapping[str, Any]) -> Any:
    """The usage object of a response body or stream chunk: top-level ``usage`` when it is an
    object, else ``x_groq.usage`` (``None`` when neither)."""
    u = chunk.get("usage")
    if isinstance(u, Mapping):
        return u
    xg = chunk.get("x_groq")
    return xg.get("usage") if isinstance(xg, Mapping) and isinstance(xg.get("usage"), Mapping) else None
