"""Normalised token usage: the one shape every dialect produces and pricing consumes.

Each provider counts differently; the dialect that reads a response converts into this shape and
says so where it happens (``nadir_extproc/dialects/``). Here the classes are disjoint, except
``reasoning_tokens`` which is *inside* ``output_tokens`` (OpenAI, Anthropic and Gemini all bill
reasoning/thinking as output).

All counts are tokens (non-negative ints), except ``web_search_requests`` (calls).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one request, by billing class.

    - ``uncached_input_tokens``: input billed at the plain input rate.
    - ``cache_read_tokens``: input served from the prompt cache.
    - ``cache_write_tokens``: input written to the cache with the 5-minute TTL (Anthropic default).
    - ``cache_write_1h_tokens``: input written to the cache with the 1-hour TTL.
    - ``output_tokens``: all output, reasoning included.
    - ``reasoning_tokens``: the part of ``output_tokens`` that was reasoning/thinking.
    - ``web_search_requests``: server-side web-search calls billed per call (Anthropic
      ``usage.server_tool_use.web_search_requests``), not tokens.
    """

    uncached_input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    web_search_requests: int = 0

    @property
    def input_tokens(self) -> int:
        """All input tokens, cache reads and writes included (``gen_ai.usage.input_tokens``)."""
        return (
            self.uncached_input_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
            + self.cache_write_1h_tokens
        )

    @property
    def total_tokens(self) -> int:
        """Input (all classes) plus output, in tokens."""
        return self.input_tokens + self.output_tokens
