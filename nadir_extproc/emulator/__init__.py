"""Local LLM provider emulator: the project's only stand-in for OpenAI, Anthropic and Gemini.

It speaks each provider's wire format (field names and order, SSE framing, status codes, error
bodies, typical headers) as checked against ``shared/data/provider-responses``, with deterministic
replies and usage, so tests can put the sidecar (or a real Envoy) in front of it and assert exact values.

Endpoints
---------
- ``POST /v1/chat/completions`` -- OpenAI Chat Completions (:mod:`.openai_chat`)
- ``POST /v1/responses`` -- OpenAI Responses (:mod:`.openai_responses`)
- ``POST /v1/messages`` -- Anthropic Messages (:mod:`.anthropic_messages`)
- ``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent[?alt=sse]`` --
  Gemini (:mod:`.gemini`; ``/v1/models/...`` too)
- ``GET /__emulator/requests`` -- every provider request received, oldest first, as JSON:
  ``[{"method", "path", "query", "headers": [[name, value], ...], "body_base64", "body_text"}]``
  (``body_text`` is null when the body is not UTF-8); ``DELETE /__emulator/requests`` clears it (204).
- ``POST /__emulator/replay`` -- queue a canned response for the next provider request: JSON
  ``{"status", "headers", "chunks_base64": [...], "delay_ms"}``; the bytes are sent exactly, in
  those chunks (see :class:`.app.Replay`). Used to replay recorded ``.sse`` files re-chunked.

Models: only those in :mod:`.models` for the endpoint's provider; any other name -- ``auto``
included, since no real provider knows it -- is a 404 in the provider's error format. The response
reports the dated snapshot (``gpt-4o-mini`` -> ``gpt-4o-mini-2024-07-18``).

Replies and usage: see :mod:`.tokens`. When a request offers function tools (and does not forbid
them, and its last message is not a tool result) the emulator calls the first (or the named) tool
with arguments from :func:`.common.example_arguments` instead of answering in text.

Test-control request headers
----------------------------
- ``x-emulator-usage: {"input": N, "output": N, "cache_read": N, "cache_write": N, "cache_write_1h": N,
  "reasoning": N}``
  -- the exact usage to report, in tokens. ``input`` is UNCACHED input; ``output`` includes
  ``reasoning``; absent keys are 0, unknown keys are a 400. Each dialect converts:
  with ``writes = cache_write + cache_write_1h``,
  OpenAI ``prompt_tokens = input + cache_read + writes`` with ``cached_tokens = cache_read`` and
  ``cache_write_tokens = writes`` (only when non-zero);
  Anthropic ``input_tokens = input``, ``cache_read_input_tokens = cache_read``,
  ``cache_creation_input_tokens = writes`` split into ``ephemeral_5m_input_tokens = cache_write``
  and ``ephemeral_1h_input_tokens = cache_write_1h``;
  Gemini ``promptTokenCount = input + cache_read + writes``, ``cachedContentTokenCount =
  cache_read``, ``candidatesTokenCount = output - reasoning``, ``thoughtsTokenCount = reasoning``.
- ``x-emulator-status: <code>`` -- answer with that status (>= 300) and the provider's error body
  (429 also sends ``retry-after: 1``); the body is not parsed.
- ``x-emulator-header: name: value`` -- add that response header; repeat the request header for
  several. Each occurrence is one header (values are never split on commas).
- ``x-emulator-gzip: 1`` -- gzip the response body (``content-encoding: gzip``; SSE is flushed per event).
- ``x-emulator-chunk-delay-ms: N`` -- sleep N ms between SSE events.

A malformed control header is answered 400 in the provider's error format.

Entry points
------------
- ``handle = await start_emulator(host="127.0.0.1", port=0)``; ``handle.port``, ``handle.base_url``,
  ``handle.requests`` (list of :class:`RecordedRequest`), ``handle.clear_requests()``,
  ``await handle.stop()``.
- ``python -m nadir_extproc.emulator --host 127.0.0.1 --port N`` prints
  ``emulator listening on http://127.0.0.1:PORT`` when ready and exits 0 on SIGTERM/SIGINT.
"""

from .app import EmulatorHandle, RecordedRequest, build_app, start_emulator
from .control import EmulatedUsage

__all__ = ["EmulatedUsage", "EmulatorHandle", "RecordedRequest", "build_app", "start_emulator"]
