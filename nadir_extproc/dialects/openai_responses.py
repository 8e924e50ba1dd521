"""OpenAI Responses (``POST /v1/responses``).

Usage counting rule (OpenAI API reference, "The response object"): ``input_tokens`` *includes*
``input_tokens_details.cached_tokens``; ``output_tokens`` *includes*
``output_tokens_details.reasoning_tokens``. When streamed, usage arrives only in the
``response.completed`` / ``response.incomplete`` / ``response.failed`` event's ``response``.
"""

from __future__ import annotations

from typing import Any

from nadir_extproc.dialects.base import Dialect, _text_of
from nadir_extproc.dialects.openai_chat import openai_usage
from nadir_extproc.pricing.usage import Usage


class OpenAIResponses(Dialect):
    name = "openai_responses"
    provider = "openai"
    operation = "chat"
    paths = ("/v1/responses", "/responses")

    def prompt_text(self, body: dict[str, Any]) -> str:
        out: list[str] = []
        instr = body.get("instructions")
        if isinstance(instr, str):
            out.append(instr)
        inp = body.get("input")
        if isinstance(inp, str):
            out.append(inp)
        elif isinstance(inp, list):
            for item in inp:
                if isinstance(item, dict):
                    _text_of(item.get("content"), out)
                elif isinstance(item, str):
                    out.append(item)
        return "\n".join(out)

    def usage(self, body: dict[str, Any]) -> Usage | None:
        return openai_usage(
            body.get("usage"),
            "input_tokens",
            "output_tokens",
            "input_tokens_details",
            "output_tokens_details",
        )
