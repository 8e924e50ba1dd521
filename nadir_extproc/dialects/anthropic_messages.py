"""Anthropic Messages (``POST /v1/messages``).

Usage counting rule (Anthropic API reference, "Messages" usage object): ``input_tokens``
*excludes* ``cache_read_input_tokens`` and ``cache_creation_input_tokens``; the three are
disjoint. ``cache_creation`` splits writes by TTL (``ephemeral_5m_input_tokens``,
``ephemeral_1h_input_tokens``); without it all writes are 5-minute writes (the default TTL).
Thinking tokens are inside ``output_tokens`` (no separate counter). When ``usage.iterations`` is
present (server-side compaction), each entry is a separately billed step and the top-level counts
cover only the last one, so the bill is the sum of the iterations (shared case 26).
Server-side web searches are billed per call: ``usage.server_tool_use.web_search_requests``
(web fetches, ``web_fetch_requests``, cost only their tokens: Anthropic docs, "Web fetch tool").

Price variants the usage reports (``price_variant``): ``usage.speed`` (``"fast"`` is fast mode,
premium-priced: Anthropic docs, "Fast mode", https://platform.claude.com/docs/en/build-with-claude/fast-mode)
and ``usage.inference_geo`` (data residency: US-only inference is priced above global; Anthropic
docs, "Data residency"). Anything but the standard value (``speed`` ``"standard"``,
``inference_geo`` ``"global"``) must be priced by a matching catalogue variant, else the request is
unpriced — never billed at the standard price.

Claude on Vertex AI speaks the same body at
``/v1/projects/{p}/locations/{l}/publishers/anthropic/models/{model}:rawPredict`` (and
``:streamRawPredict``), with the model in the path (Vertex AI docs, "Use Claude models").
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from nadir_extproc.dialects.base import KEEP, TERMINAL, USAGE, Dialect, NeedsShape, StreamUsage, _messages_text, _text_of, as_int, str_or_none
from nadir_extproc.pricing.usage import Usage


def _one(u: dict[str, Any]) -> tuple[int, int, int, int, int]:
    """(uncached input, cache read, 5m write, 1h write, output) of one Anthropic usage object."""
    write = as_int(u.get("cache_creation_input_tokens"))
    cc = u.get("cache_creation")
    if isinstance(cc, dict):
        w1h = as_int(cc.get("ephemeral_1h_input_tokens"))
        w5m = as_int(cc.get("ephemeral_5m_input_tokens"))
        if w1h + w5m == 0:
            w5m = write
    else:
        w5m, w1h = write, 0
    return (
        as_int(u.get("input_tokens")),
        as_int(u.get("cache_read_input_tokens")),
        w5m,
        w1h,
        as_int(u.get("output_tokens")),
    )


#: Values of the usage's price-variant fields that mean standard pricing.
_STANDARD_VARIANTS = {"speed": frozenset({"standard", ""}), "inference_geo": frozenset({"global", "", "not_available"})}
# Vertex AI: ".../publishers/anthropic/models/{model}:rawPredict|streamRawPredict"
_VERTEX_PATH = re.compile(r"^/[^?]*?/publishers/anthropic/models/(?P<model>[^/:?]+):(?P<method>rawPredict|streamRawPredict)$")


def price_variant(u: Any) -> dict[str, str]:
    """The non-standard price variants an Anthropic usage object reports: ``{"speed": "fast"}``,
    ``{"inference_geo": "us"}`` …; ``{}`` for standard pricing (values lower-cased)."""
    out: dict[str, str] = {}
    if isinstance(u, dict):
        for key, standard in _STANDARD_VARIANTS.items():
            v = u.get(key)
            if isinstance(v, str) and v.strip().lower() not in standard:
                out[key] = v.strip().lower()
    return out


def anthropic_usage(u: Any) -> Usage | None:
    """Normalise an Anthropic usage object (see module docstring for the rule)."""
    if not isinstance(u, dict) or ("input_tokens" not in u and "output_tokens" not in u):
        return None
    its = u.get("iterations")
    parts = [_one(x) for x in its if isinstance(x, dict)] if isinstance(its, list) and its else [_one(u)]
    unc, read, w5m, w1h, out = (sum(p[i] for p in parts) for i in range(5))
    stu = u.get("server_tool_use")
    searches = as_int(stu.get("web_search_requests")) if isinstance(stu, dict) else 0
    return Usage(
        uncached_input_tokens=unc,
        cache_read_tokens=read,
        cache_write_tokens=w5m,
        cache_write_1h_tokens=w1h,
        output_tokens=out,
        web_search_requests=searches,
    )


class MessagesStreamUsage(StreamUsage):
    """Messages stream: ``message_start.message.usage`` then ``message_delta.usage`` are running
    totals, not increments (shared case 04). Fields are merged one by one: the latest value that
    is present and non-zero wins, so a later event that omits or zeroes a field keeps the earlier
    count, and a field that grows (server tools) takes the new value. ``iterations`` (case 26) is
    taken from the latest event that has it. ``message_stop`` is terminal; ``event: error`` after
    HTTP 200 marks the stream failed. Only message_start, message_delta and error are parsed.
    ``service_tier``: ``usage.service_tier`` of the latest of those events that has it."""

    def __init__(self) -> None:
        super().__init__()
        self._merged: dict[str, Any] = {}

    def _merge(self, u: Any) -> None:
        if not isinstance(u, dict):
            return
        for k, v in u.items():
            if k == "iterations" and isinstance(v, list) and v:
                self._merged[k] = v
            elif k == "server_tool_use" and isinstance(v, dict):
                self._merged[k] = v
            elif k == "cache_creation" and isinstance(v, dict):
                cc = dict(self._merged.get(k) or {})
                for kk, vv in v.items():
                    if type(vv) is int and vv > 0:
                        cc[kk] = vv
                self._merged[k] = cc
            elif type(v) is int and (v > 0 or k not in self._merged):
                self._merged[k] = v
            elif k == "service_tier" and isinstance(v, str):
                self.service_tier = v
            elif k in _STANDARD_VARIANTS and isinstance(v, str):
                self._merged[k] = v

    def on_event(self, ev: Any) -> int:
        name = ev.event
        if name == "message_stop":
            return TERMINAL
        if name not in ("message_start", "message_delta", "error"):
            return KEEP
        try:
            obj = json.loads(ev.data)
        except ValueError:
            return KEEP
        if not isinstance(obj, dict):
            return KEEP
        if name == "error":
            self.failed = True
        elif name == "message_start":
            msg = obj.get("message")
            if isinstance(msg, dict):
                self.note(msg.get("model"), msg.get("id"))
                self._merge(msg.get("usage"))
        else:
            self._merge(obj.get("usage"))
            delta = obj.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                self.finish_reasons = [delta["stop_reason"]]
            return USAGE
        return KEEP

    def usage(self) -> Usage | None:
        return anthropic_usage(self._merged) if self._merged else None

    def price_variant(self) -> dict[str, str]:
        return price_variant(self._merged)


class AnthropicMessages(Dialect):
    name = "anthropic_messages"
    stream_terminal = "message_stop"  # Anthropic "Streaming messages": the final event
    provider = "anthropic"
    operation = "chat"
    paths = ("/v1/messages",)
    path_suffixes = ("/messages",)
    # Messages reference: image blocks; tool_use / tool_result / server_tool_use blocks.
    needs_shape = NeedsShape(roots=("messages", "system"), image_types=frozenset({"image"}),
                             tool_types=frozenset({"tool_use", "tool_result", "server_tool_use"}))
    object_kinds = ("message",)
    #: Message Batches results: ``GET /v1/messages/batches/{id}/results`` (JSONL).
    batch_results = re.compile(r"/messages/batches/[^/]+/results$")
    # Anthropic API reference, Messages "Create".
    param_keys = (("max_tokens", "max_tokens", "int"), ("temperature", "temperature", "float"),
                  ("top_p", "top_p", "float"), ("top_k", "top_k", "float"),
                  ("stop_sequences", "stop_sequences", "strs"))
    cap_keys = ("max_tokens",)

    def system_content(self, body: dict[str, Any]) -> Any:
        """Top-level ``system`` (a string or text blocks)."""
        return body.get("system")

    def output_turns(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """``content`` blocks with ``stop_reason``."""
        if not isinstance(body.get("content"), list):
            return []
        return [{"role": "assistant", "content": body["content"], "finish_reason": body.get("stop_reason")}]

    def refusal_body(self, status: int, code: str, message: str) -> bytes:
        """Anthropic's error shape: ``{"type": "error", "error": {"type": code, "message"}}``."""
        return json.dumps({"type": "error", "error": {"type": code, "message": message}}).encode("utf-8")

    def prompt_text(self, body: dict[str, Any]) -> str:
        out: list[str] = []
        _text_of(body.get("system"), out)
        _messages_text(body.get("messages"), out)
        return "\n".join(out)

    def request_user(self, body: dict[str, Any]) -> Any:
        """Anthropic's ``metadata.user_id``."""
        md = body.get("metadata")
        return md.get("user_id") if isinstance(md, dict) else None

    def error_body(self, message: str) -> bytes:
        """Anthropic's error shape (API reference, "Errors"):
        ``{"type": "error", "error": {"type": "rate_limit_error", "message"}}``
        (``anthropic.RateLimitError`` in the SDK)."""
        doc = {"type": "error", "error": {"type": "rate_limit_error", "message": message}}
        return json.dumps(doc).encode("utf-8")

    def usage(self, body: dict[str, Any]) -> Usage | None:
        return anthropic_usage(body.get("usage"))

    def response_ids(self, body: dict[str, Any]) -> tuple[str | None, list[str] | None]:
        """``id`` and ``stop_reason``."""
        sr = body.get("stop_reason")
        return str_or_none(body.get("id")), [sr] if isinstance(sr, str) else None

    def response_tier(self, body: dict[str, Any]) -> str | None:
        """``usage.service_tier`` (``standard``, ``priority``, ``batch``)."""
        u = body.get("usage")
        return str_or_none(u.get("service_tier")) if isinstance(u, dict) else None

    def price_variant(self, body: dict[str, Any]) -> dict[str, str]:
        return price_variant(body.get("usage"))

    def matches_path(self, path: str) -> bool:
        return _VERTEX_PATH.match(path) is not None

    def model_from_path(self, path: str) -> str | None:
        m = _VERTEX_PATH.match(path.split("?", 1)[0])
        return m.group("model") if m else None

    def is_stream_path(self, path: str) -> bool:
        m = _VERTEX_PATH.match(path.split("?", 1)[0])
        return m is not None and m.group("method") == "streamRawPredict"

    def stream_usage(self, injected_usage: bool = False, usage_object: Callable[[dict[str, Any]], Any] | None = None) -> StreamUsage:
        return MessagesStreamUsage()
