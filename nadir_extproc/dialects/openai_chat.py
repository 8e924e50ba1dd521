"""OpenAI Chat Completions (``POST /v1/chat/completions``), also spoken by OpenAI-compatible servers.

Usage counting rule (OpenAI API reference, "The chat completion object"):
``prompt_tokens`` *includes* ``prompt_tokens_details.cached_tokens``; ``completion_tokens``
*includes* ``completion_tokens_details.reasoning_tokens``. OpenAI-compatible gateways that proxy
Anthropic (OpenRouter, recorded response 45) also report ``prompt_tokens_details.cache_write_tokens``,
likewise *inside* ``prompt_tokens`` (3329 = 3 + 3211 cached + 115 written).
"""

from __future__ import annotations

from typing import Any

from nadir_extproc.dialects.base import Dialect, _text_of, as_int
from nadir_extproc.pricing.usage import Usage


def openai_usage(u: Any, input_key: str, output_key: str, in_details: str, out_details: str) -> Usage | None:
    """Normalise an OpenAI usage object (Chat and Responses share the rule, not the key names).

    Input includes cached (and cache-write) tokens, so uncached = input - cached - written
    (never below 0 if a server reports more than the input); reasoning is inside output.
    Returns ``None`` when ``u`` is not a usage object.
    """
    if not isinstance(u, dict) or (input_key not in u and output_key not in u):
        return None
    prompt = as_int(u.get(input_key))
    d_in = u.get(in_details)
    cached = as_int(d_in.get("cached_tokens")) if isinstance(d_in, dict) else 0
    cached = min(cached, prompt)
    written = as_int(d_in.get("cache_write_tokens")) if isinstance(d_in, dict) else 0
    written = min(written, prompt - cached)
    d_out = u.get(out_details)
    output = as_int(u.get(output_key))
    reasoning = as_int(d_out.get("reasoning_tokens")) if isinstance(d_out, dict) else 0
    return Usage(
        uncached_input_tokens=prompt - cached - written,
        cache_read_tokens=cached,
        cache_write_tokens=written,
        output_tokens=output,
        reasoning_tokens=min(reasoning, output),
    )


class OpenAIChat(Dialect):
    name = "openai_chat"
    provider = "openai"
    operation = "chat"
    paths = ("/v1/chat/completions", "/chat/completions")

    def prompt_text(self, body: dict[str, Any]) -> str:
        out: list[str] = []
        msgs = body.get("messages")
        if isinstance(msgs, list):
            for m in msgs:
                if isinstance(m, dict):
                    _text_of(m.get("content"), out)
        return "\n".join(out)

    def usage(self, body: dict[str, Any]) -> Usage | None:
        return openai_usage(
            body.get("usage"),
            "prompt_tokens",
            "completion_tokens",
            "prompt_tokens_details",
            "completion_tokens_details",
        )
