"""Normalised token usage: the one shape every dialect produces and pricing consumes.

Each provider counts differently; the dialect that reads a response converts into this shape and
says so where it happens (``nadir_extproc/dialects/``). Here the classes are disjoint, except
``reasoning_tokens`` which is *inside* ``output_tokens`` (OpenAI, Anthropic and Gemini all bill
reasoning/thinking as output).

All counts are tokens (non-negative ints), except the billed calls (``web_search_requests``,
``file_search_calls``, ``code_interpreter_calls``), which are calls.

Modality parts (``input_audio_tokens`` …) are *inside* their headline class: audio/image/video
input inside ``uncached_input_tokens``, audio/image output inside the non-reasoning part of
``output_tokens``. A part is billed at its own catalogue rate (genai-prices ``input_audio_mtok`` …)
and falls back to its parent's rate when the model has none (genai-prices' own semantics).
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
      ``usage.server_tool_use.web_search_requests``, OpenAI Responses ``web_search_call`` output
      items), not tokens. Catalogue rate ``web_searches_kcount`` (USD per 1000 calls).
    - ``file_search_calls``: hosted file-search calls (OpenAI ``file_search_call`` items);
      catalogue ``storage_searches_kcount``.
    - ``code_interpreter_calls``: hosted code-interpreter calls (OpenAI ``code_interpreter_call``
      items); catalogue ``code_executions_kcount``.
    - ``input_audio_tokens`` / ``input_image_tokens`` / ``input_video_tokens``: the part of
      ``uncached_input_tokens`` in that modality (OpenAI ``prompt_tokens_details.audio_tokens``,
      Gemini ``promptTokensDetails`` by modality).
    - ``output_audio_tokens`` / ``output_image_tokens``: the part of ``output_tokens`` (outside
      ``reasoning_tokens``) in that modality (OpenAI ``completion_tokens_details.audio_tokens``).
    """

    uncached_input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    web_search_requests: int = 0
    file_search_calls: int = 0
    code_interpreter_calls: int = 0
    input_audio_tokens: int = 0
    input_image_tokens: int = 0
    input_video_tokens: int = 0
    output_audio_tokens: int = 0
    output_image_tokens: int = 0

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
