"""xAI (api.x.ai): Grok models over OpenAI Chat Completions (and Responses).

Where xAI differs from OpenAI's usage rule (shared case 27): ``completion_tokens`` does *not*
include ``completion_tokens_details.reasoning_tokens``; reasoning is reported on top of it and
billed at the completion price, and ``total_tokens`` = prompt + completion + reasoning
(40 + 25 + 500 = 565). Source: xAI docs, "Consumption and Rate Limits"
(https://docs.x.ai/developers/rate-limits): "Reasoning tokens - Charged at completion token
price"; "if you selected a reasoning model, additional reasoning tokens will be added into the
total token consumption". genai-prices' own x-ai extractor reads the same body as 525 output, 500
of them reasoning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from nadir_extproc.dialects.base import as_int
from nadir_extproc.pricing.usage import Usage


def usage_fix(raw: Mapping[str, Any], usage: Usage) -> Usage:
    """The dialect's ``usage`` with xAI's reasoning added on top of the output: billed output =
    ``completion_tokens`` + ``reasoning_tokens``. Applied only when the counts add up xAI's way
    (``total_tokens`` = prompt + completion + reasoning); a body that counts the OpenAI way
    (reasoning inside completion) is left as the dialect read it."""
    d = raw.get("completion_tokens_details")
    reasoning = as_int(d.get("reasoning_tokens")) if isinstance(d, Mapping) else 0
    prompt, completion = as_int(raw.get("prompt_tokens")), as_int(raw.get("completion_tokens"))
    total = raw.get("total_tokens")
    if not reasoning or type(total) is not int or total != prompt + completion + reasoning:
        return usage
    return replace(
        usage,
        output_tokens=completion + reasoning,
        reasoning_tokens=reasoning,
        output_audio_tokens=min(usage.output_audio_tokens, completion),
        output_image_tokens=min(usage.output_image_tokens, completion - min(usage.output_audio_tokens, completion)),
    )
