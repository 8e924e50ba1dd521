"""OpenAI Chat Completions (``POST /v1/chat/completions``), also spoken by OpenAI-compatible servers.

Usage counting rule (OpenAI API reference, "The chat completion object"):
``prompt_tokens`` *includes* ``prompt_tokens_details.cached_tokens``; ``completion_tokens``
*includes* ``completion_tokens_details.reasoning_tokens``. OpenAI-compatible gateways that proxy
Anthropic (OpenRouter, recorded response 45) also report ``prompt_tokens_details.cache_write_tokens``,
likewise *inside* ``prompt_tokens`` (3329 = 3 + 3211 cached + 115 written). DeepSeek (API docs,
"Context Caching") reports cache hits as top-level ``prompt_cache_hit_tokens`` beside
``prompt_cache_miss_tokens``, the two summing to ``prompt_tokens``; the larger of it and
``prompt_tokens_details.cached_tokens`` is the cache read (they agree when both are sent), else every
hit would be billed at the miss rate.

Modalities (OpenAI API reference, ``CompletionUsage``; shared case 31):
``prompt_tokens_details.audio_tokens`` / ``image_tokens`` are the audio / image part of
``prompt_tokens``, and ``completion_tokens_details.audio_tokens`` / ``image_tokens`` the audio / image
part of ``completion_tokens``; each is billed at its own rate (gpt-audio: $32 / $64 per MTok audio
against $2.50 / $10 text). Cached audio is not split out (counted at the cache-read rate).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from nadir_extproc import jsonbody
from nadir_extproc.jsonbody import JsonObject
from nadir_extproc.dialects.base import NeedsShape
from nadir_extproc.dialects.base import (
    CARRIER, DROP, KEEP, TERMINAL, USAGE, Dialect, StreamUsage, _messages_text, as_int, str_or_none,
)
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
    cached = max(
        as_int(d_in.get("cached_tokens")) if isinstance(d_in, dict) else 0,
        as_int(u.get("prompt_cache_hit_tokens")),  # DeepSeek: hit + miss = prompt_tokens
    )
    cached = min(cached, prompt)
    written = as_int(d_in.get("cache_write_tokens")) if isinstance(d_in, dict) else 0
    written = min(written, prompt - cached)
    d_out = u.get(out_details)
    output = as_int(u.get(output_key))
    reasoning = as_int(d_out.get("reasoning_tokens")) if isinstance(d_out, dict) else 0
    reasoning = min(reasoning, output)
    uncached = prompt - cached - written
    in_audio = min(as_int(d_in.get("audio_tokens")), uncached) if isinstance(d_in, dict) else 0
    in_image = min(as_int(d_in.get("image_tokens")), uncached - in_audio) if isinstance(d_in, dict) else 0
    out_audio = min(as_int(d_out.get("audio_tokens")), output - reasoning) if isinstance(d_out, dict) else 0
    out_image = min(as_int(d_out.get("image_tokens")), output - reasoning - out_audio) if isinstance(d_out, dict) else 0
    return Usage(
        uncached_input_tokens=uncached,
        cache_read_tokens=cached,
        cache_write_tokens=written,
        output_tokens=output,
        reasoning_tokens=reasoning,
        input_audio_tokens=in_audio,
        input_image_tokens=in_image,
        output_audio_tokens=out_audio,
        output_image_tokens=out_image,
    )


def requested_service_tier(body: dict[str, Any]) -> str | None:
    """An OpenAI request's ``service_tier`` when it names a tier (not ``auto``), else ``None``."""
    t = body.get("service_tier")
    return t if isinstance(t, str) and t.strip() and t.strip().lower() != "auto" else None


def chat_usage(u: Any) -> Usage | None:
    """Normalise a Chat Completions usage object (``prompt_tokens``/``completion_tokens`` names)."""
    return openai_usage(u, "prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details")


_WS = b" \t\r\n"
_WS1 = (b" ", b"\t", b"\r", b"\n")


def _top_level_usage(chunk: dict[str, Any]) -> Any:
    return chunk.get("usage")


_AZURE_DEPLOYMENT = re.compile(r"^/openai/deployments/[^/?]+/chat/completions$")


def openai_error_body(message: str) -> bytes:
    """OpenAI's 429 error object (API reference, "Error codes"):
    ``{"error": {"message", "type": "rate_limit_exceeded", "param": null, "code": "budget_exceeded"}}``
    (``openai.RateLimitError`` in the SDK)."""
    doc = {"error": {"message": message, "type": "rate_limit_exceeded", "param": None, "code": "budget_exceeded"}}
    return json.dumps(doc).encode("utf-8")


_USAGE_OBJECT = re.compile(r'"usage"\s*:\s*\{')
_EMPTY_CHOICES = re.compile(r'"choices"\s*:\s*\[\s*\]')
#: The top-level ``"service_tier":"…"`` of a chunk (inside message text the quotes are escaped,
#: so text cannot match).
_SERVICE_TIER = re.compile(r'"service_tier"\s*:\s*"([^"\\]{1,64})"')
#: A non-null ``"finish_reason":"…"`` (every other chunk has ``"finish_reason":null``).
_FINISH = re.compile(r'"finish_reason"\s*:\s*"')


class ChatStreamUsage(StreamUsage):
    """Chat Completions stream: usage is in the chunk with ``choices: []`` (with
    ``stream_options.include_usage``); OpenAI-compatible servers may repeat cumulative usage on
    every chunk, so the last usage object wins. ``data: [DONE]`` is the terminal event. Only the
    first chunk (for the model) and chunks whose text holds a usage object are JSON-parsed, and
    only the last of those, at the end. ``service_tier`` (every chunk carries the tier that served
    the request) comes from the first chunk and from each usage chunk (one regex on its text).

    Verdicts: ``[DONE]`` is ``TERMINAL``; the ``choices: []`` usage chunk is ``USAGE``, and also
    ``DROP`` when we injected ``include_usage`` (the client did not ask for it: a Chat client must
    never see a chunk shape it did not ask for); then each chunk with a finish reason is a
    ``CARRIER`` (the last one carries the opt-in cost field instead of the dropped usage chunk)."""

    def __init__(self, injected_usage: bool, usage_object: Callable[[dict[str, Any]], Any] | None = None) -> None:
        super().__init__()
        self.injected = injected_usage
        # Where a chunk's usage object sits: top-level "usage" unless the provider says otherwise
        # (Groq: also x_groq.usage; nadir_extproc.providers.groq.usage_object).
        self._usage_of = usage_object or _top_level_usage
        self._last_usage_data: str | None = None
        self._usage: Usage | None = None
        self._finish: dict[int, str] = {}  # choice index -> finish_reason

    def on_event(self, ev: Any) -> int:
        data = ev.data
        if not ev.has_data:
            return KEEP
        if data == "[DONE]":
            return TERMINAL
        obj: Any = None
        if self.model is None or '"error"' in data[:20]:
            try:
                obj = json.loads(data)
            except ValueError:
                return KEEP
            if isinstance(obj, dict):
                if isinstance(obj.get("error"), dict):
                    self.failed = True
                self.note(obj.get("model"), obj.get("id"))
                t = obj.get("service_tier")
                if isinstance(t, str):
                    self.service_tier = t
        verdict = KEEP
        if _FINISH.search(data):
            # The chunk that ends a choice (one per choice): parsed for its finish_reason. When the
            # usage chunk that follows is ours to drop, the opt-in cost field rides on this one.
            if obj is None:
                try:
                    obj = json.loads(data)
                except ValueError:
                    obj = None
            self._note_finish(obj)
            if self.injected:
                verdict = CARRIER
        if _USAGE_OBJECT.search(data):
            tm = _SERVICE_TIER.search(data)
            if tm is not None:
                self.service_tier = tm.group(1)
            self._last_usage_data = data
            self._usage = None
            if _EMPTY_CHOICES.search(data):
                return DROP | USAGE if self.injected else USAGE
        return verdict

    def _note_finish(self, obj: Any) -> None:
        """Record ``choices[].finish_reason`` of a parsed chunk, in choice-index order."""
        choices = obj.get("choices") if isinstance(obj, dict) else None
        if not isinstance(choices, list):
            return
        for c in choices:
            if isinstance(c, dict) and isinstance(c.get("finish_reason"), str):
                i = c.get("index")
                self._finish[i if type(i) is int else len(self._finish)] = c["finish_reason"]
        if self._finish:
            self.finish_reasons = [self._finish[k] for k in sorted(self._finish)]

    def raw_usage(self) -> Any:
        """The last usage object the stream reported, as sent (``None`` when none)."""
        if self._last_usage_data is None:
            return None
        try:
            obj = json.loads(self._last_usage_data)
        except ValueError:
            return None
        return self._usage_of(obj) if isinstance(obj, dict) else None

    def usage(self) -> Usage | None:
        if self._usage is None and self._last_usage_data is not None:
            try:
                obj = json.loads(self._last_usage_data)
            except ValueError:
                return None
            if isinstance(obj, dict):
                self._usage = chat_usage(self._usage_of(obj))
        return self._usage


class OpenAIShapes(Dialect):
    """What OpenAI's two APIs (Chat Completions, Responses) share: the body's ``user``, the 429
    error object, and the Batch API's output file (``GET /v1/files/{id}/content``)."""

    batch_results = re.compile(r"/files/[^/]+/content$")

    def request_user(self, body: dict[str, Any]) -> Any:
        """OpenAI's top-level ``user``."""
        return body.get("user")

    def error_body(self, message: str) -> bytes:
        return openai_error_body(message)

    def refusal_body(self, status: int, code: str, message: str) -> bytes:
        """OpenAI's error object: ``{"error": {"message", "type": "invalid_request_error" (or
        "server_error" from 500), "param": null, "code"}}``."""
        doc = {"error": {"message": message, "type": "invalid_request_error" if status < 500 else "server_error",
                         "param": None, "code": code}}
        return json.dumps(doc).encode("utf-8")


class OpenAIChat(OpenAIShapes):
    name = "openai_chat"
    stream_terminal = "data: [DONE]"  # OpenAI "Streaming": the stream ends with data: [DONE]
    provider = "openai"
    operation = "chat"
    paths = ("/v1/chat/completions", "/chat/completions")
    path_suffixes = ("/chat/completions",)
    # Chat Completions reference: image_url content parts; tools / legacy functions; tool_calls
    # and legacy function_call on assistant messages; role tool / function results.
    needs_shape = NeedsShape(roots=("messages",), tool_lists=("tools", "functions"), image_types=frozenset({"image_url"}),
                             tool_keys=("tool_calls", "function_call"), tool_roles=("tool", "function"))
    object_kinds = ("chat.completion",)
    # OpenAI API reference, Chat Completions "Create": max_tokens is the deprecated name of
    # max_completion_tokens (the cap wins in that order for the estimate).
    param_keys = (("max_tokens", "max_tokens", "int"), ("max_completion_tokens", "max_tokens", "int"),
                  ("temperature", "temperature", "float"), ("top_p", "top_p", "float"),
                  ("frequency_penalty", "frequency_penalty", "float"), ("presence_penalty", "presence_penalty", "float"),
                  ("seed", "seed", "int"), ("n", "choice_count", "int"), ("stop", "stop_sequences", "strs"))
    cap_keys = ("max_completion_tokens", "max_tokens")

    def choice_count(self, body: dict[str, Any] | None) -> int:
        """``n`` (default 1)."""
        n = body.get("n") if isinstance(body, dict) else None
        return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1

    def system_content(self, body: dict[str, Any]) -> Any:
        """Chat keeps system text inside ``messages``; a top-level ``system`` or ``instructions``
        (gateways' extensions) is reported when present."""
        return body.get("system", body.get("instructions"))

    def output_turns(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """``choices[].message.content`` with ``finish_reason``."""
        choices = body.get("choices")
        if not isinstance(choices, list):
            return []
        return [{"role": "assistant", "content": c["message"].get("content"), "finish_reason": c.get("finish_reason")}
                for c in choices if isinstance(c, dict) and isinstance(c.get("message"), dict)]

    def no_usage_hint(self, request: dict[str, Any] | None) -> str:
        """A stream without ``stream_options.include_usage`` carries no usage (OpenAI reference)."""
        if not isinstance(request, dict) or request.get("stream") is not True:
            return ""
        so = request.get("stream_options")
        if isinstance(so, dict) and so.get("include_usage"):
            return ""
        return " (a Chat Completions stream without stream_options.include_usage carries none)"

    def matches_path(self, path: str) -> bool:
        """Azure OpenAI deployments: ``/openai/deployments/{deployment}/chat/completions`` (Azure
        OpenAI REST reference; the deployment names the model, the response body reports it)."""
        return _AZURE_DEPLOYMENT.match(path) is not None

    def requested_tier(self, body: dict[str, Any]) -> str | None:
        """The request's ``service_tier`` (``flex``, ``priority`` …; OpenAI API reference); ``auto``
        leaves the choice to OpenAI, so it names no tier."""
        return requested_service_tier(body)

    def prompt_text(self, body: dict[str, Any]) -> str:
        out: list[str] = []
        _messages_text(body.get("messages"), out)
        return "\n".join(out)


    def response_ids(self, body: dict[str, Any]) -> tuple[str | None, list[str] | None]:
        """``id`` and ``choices[].finish_reason``."""
        choices = body.get("choices")
        reasons = [c["finish_reason"] for c in choices if isinstance(c, dict) and isinstance(c.get("finish_reason"), str)] if isinstance(choices, list) else []
        return str_or_none(body.get("id")), reasons or None

    def response_tier(self, body: dict[str, Any]) -> str | None:
        """Top-level ``service_tier`` (``default``, ``flex``, ``priority``; Groq ``on_demand``)."""
        return str_or_none(body.get("service_tier"))

    def usage(self, body: dict[str, Any]) -> Usage | None:
        return chat_usage(body.get("usage"))

    def stream_usage(self, injected_usage: bool = False, usage_object: Callable[[dict[str, Any]], Any] | None = None) -> StreamUsage:
        return ChatStreamUsage(injected_usage, usage_object)

    def inject_stream_usage(self, raw: bytes, body: dict[str, Any]) -> bytes | None:
        """Add ``"stream_options": {"include_usage": true}`` to a streamed request that lacks it
        (OpenAI sends streamed usage only then). The object is appended before the closing brace
        so no other byte changes; an existing ``stream_options`` object is rewritten with
        ``include_usage`` set. ``None`` when not streamed or already asked for."""
        if body.get("stream") is not True:
            return None
        so = body.get("stream_options")
        if isinstance(so, dict) and so.get("include_usage") is True:
            return None
        if so is None and "stream_options" not in body:
            # Before the closing brace, found from the end (no copy unless there is whitespace).
            end = len(raw) if raw[-1:] not in _WS1 else len(raw.rstrip(_WS))
            if end == 0 or raw[end - 1] != 0x7D:  # '}'
                return None
            i = end - 1 if raw[end - 2 : end - 1] not in _WS1 else len(raw[: end - 1].rstrip(_WS))
            sep = b"" if i > 0 and raw[i - 1] == 0x7B else b","  # '{': empty object
            return b"".join((raw[:i], sep, b'"stream_options":{"include_usage":true}}'))
        if isinstance(so, dict):
            # Only the stream_options value changes (linear: one parse, one join).
            obj = body if isinstance(body, JsonObject) and body.raw is raw else jsonbody.parse(raw)
            spans = obj.byte_spans("stream_options") if isinstance(obj, JsonObject) else []
            if not spans:
                return None
            new = json.dumps({**so, "include_usage": True}, ensure_ascii=False, separators=(",", ":")).encode()
            return jsonbody.replace_values(raw, [(a, b) for a, b, _ in spans], new)
        return None
