"""OpenAI Responses (``POST /v1/responses``).

Usage counting rule (OpenAI API reference, "The response object"): ``input_tokens`` *includes*
``input_tokens_details.cached_tokens``; ``output_tokens`` *includes*
``output_tokens_details.reasoning_tokens``. When streamed, usage arrives only in the
``response.completed`` / ``response.incomplete`` / ``response.failed`` event's ``response``.

Hosted tool calls are billed per call on top of tokens and are not in ``usage``: they are the
``output`` items of type ``web_search_call`` (OpenAI pricing, "Built-in tools": web search $10 /
1K calls for gpt-5; search content tokens are already in ``input_tokens``), ``file_search_call``
($2.50 / 1K) and ``code_interpreter_call``, counted from the response object's ``output`` in JSON
and in the stream's final event, which carries the whole response (shared case 29).

Background responses (OpenAI API reference, "Background mode"; shared case 34): ``POST`` with
``"background": true`` answers ``status: "queued"`` and ``usage: null``; the usage comes with the
completed response object from ``GET /v1/responses/{id}`` (or a resumed stream,
``GET /v1/responses/{id}?stream=true``). ``retrieved_id`` recognises that path; ``is_pending``
says a response has not finished yet. Billing is the same as for a foreground response.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from collections.abc import Callable
from typing import Any

from nadir_extproc.dialects.base import NeedsShape
from nadir_extproc.dialects.base import KEEP, TERMINAL, USAGE, Dialect, StreamUsage, _text_of, str_or_none
from nadir_extproc.dialects.openai_chat import OpenAIShapes, openai_usage, requested_service_tier
from nadir_extproc.pricing.usage import Usage


_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
#: ``output`` item type -> the ``Usage`` field counting it (billed per call).
_TOOL_CALLS = {
    "web_search_call": "web_search_requests",
    "file_search_call": "file_search_calls",
    "code_interpreter_call": "code_interpreter_calls",
}


def responses_usage(resp: Any) -> Usage | None:
    """Normalised usage of a Responses ``response`` object: its ``usage`` (OpenAI's rule, the
    Chat names changed) plus the hosted tool calls among its ``output`` items. ``None`` when the
    object has no usage."""
    if not isinstance(resp, dict):
        return None
    u = openai_usage(resp.get("usage"), "input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details")
    if u is None:
        return None
    calls: dict[str, int] = {}
    out = resp.get("output")
    if isinstance(out, list):
        for item in out:
            field = _TOOL_CALLS.get(item.get("type")) if isinstance(item, dict) else None
            if field is not None:
                calls[field] = calls.get(field, 0) + 1
    return replace(u, **calls) if calls else u


class ResponsesStreamUsage(StreamUsage):
    """Responses stream: usage only in ``response.completed`` / ``response.incomplete`` /
    ``response.failed`` (the terminal events, which are the only ones parsed; ``error`` too).
    ``service_tier`` is the final event's ``response.service_tier`` (the tier that served it)."""

    def __init__(self) -> None:
        super().__init__()
        self._usage: Usage | None = None

    def on_event(self, ev: Any) -> int:
        name = ev.event
        if name is None and ev.has_data and '"type"' in ev.data:
            # Some servers omit the event: line; the type is inside the JSON.
            for t in _FINAL | {"error"}:
                if f'"{t}"' in ev.data[:80]:
                    name = t
                    break
        if name in _FINAL:
            try:
                obj = json.loads(ev.data)
            except ValueError:
                return TERMINAL | USAGE
            resp = obj.get("response") if isinstance(obj, dict) else None
            if isinstance(resp, dict):
                self.note(resp.get("model"), resp.get("id"))
                inc = resp.get("incomplete_details")
                reason = inc.get("reason") if isinstance(inc, dict) else None
                reason = reason if isinstance(reason, str) else resp.get("status")
                if isinstance(reason, str):
                    self.finish_reasons = [reason]
                t = resp.get("service_tier")
                if isinstance(t, str):
                    self.service_tier = t
                self._usage = responses_usage(resp)
            if name == "response.failed":
                self.failed = True
            return TERMINAL | USAGE
        if name == "error":
            self.failed = True
        return KEEP

    def usage(self) -> Usage | None:
        return self._usage


_RETRIEVE = re.compile(r"^(?:/v1)?/responses/(?P<id>[A-Za-z0-9_-]+)$")
#: ``…/responses/{id}`` behind any prefix (the ``cost`` command reads recorded URLs).
_BY_ID_SUFFIX = re.compile(r"/responses/[A-Za-z0-9_-]+$")


class OpenAIResponses(OpenAIShapes):
    name = "openai_responses"
    stream_terminal = "response.completed"  # or response.incomplete / response.failed
    provider = "openai"
    operation = "chat"
    paths = ("/v1/responses", "/responses")
    path_suffixes = ("/responses",)
    # Responses reference: input_image parts; function_call / function_call_output input items.
    needs_shape = NeedsShape(roots=("input",), image_types=frozenset({"input_image"}),
                             tool_types=frozenset({"function_call", "function_call_output"}))
    object_kinds = ("response",)
    param_keys = (("max_output_tokens", "max_tokens", "int"), ("temperature", "temperature", "float"),
                  ("top_p", "top_p", "float"), ("seed", "seed", "int"), ("stop", "stop_sequences", "strs"))
    cap_keys = ("max_output_tokens",)

    def matches_suffix(self, bare_path: str) -> bool:
        """``…/responses``, and ``…/responses/{id}`` (a background response fetched by id)."""
        return bare_path.endswith(self.path_suffixes) or _BY_ID_SUFFIX.search(bare_path) is not None

    def system_content(self, body: dict[str, Any]) -> Any:
        """``instructions``."""
        return body.get("system", body.get("instructions"))

    def output_turns(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """``output[]`` items of type ``message`` (no per-item finish reason)."""
        out = body.get("output")
        if not isinstance(out, list):
            return []
        return [{"role": "assistant", "content": item.get("content")} for item in out
                if isinstance(item, dict) and item.get("type") == "message"]

    def requested_tier(self, body: dict[str, Any]) -> str | None:
        """The request's ``service_tier`` (``flex``, ``priority`` …; OpenAI API reference); ``auto``
        leaves the choice to OpenAI, so it names no tier."""
        return requested_service_tier(body)

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

    turns_key = "input"


    def response_ids(self, body: dict[str, Any]) -> tuple[str | None, list[str] | None]:
        """``id``, and ``incomplete_details.reason`` else ``status`` as the finish reason."""
        inc = body.get("incomplete_details")
        reason = inc.get("reason") if isinstance(inc, dict) else None
        reason = reason if isinstance(reason, str) else body.get("status")
        return str_or_none(body.get("id")), [reason] if isinstance(reason, str) else None

    def response_tier(self, body: dict[str, Any]) -> str | None:
        """Top-level ``service_tier``."""
        return str_or_none(body.get("service_tier"))

    def usage(self, body: dict[str, Any]) -> Usage | None:
        return responses_usage(body)

    def usage_blocks(self, body: dict[str, Any]) -> tuple[Any, ...]:
        """``usage``, and ``response.usage`` of a ``response.*`` event body."""
        resp = body.get("response")
        return (body.get("usage"), resp.get("usage") if isinstance(resp, dict) else None)

    #: A response can be fetched again by id (``GET /v1/responses/{id}``): price each id once.
    retrievable = True

    def retrieved_id(self, path: str) -> str | None:
        m = _RETRIEVE.match(path.split("?", 1)[0])
        return m.group("id") if m else None

    def is_pending(self, body: dict[str, Any]) -> bool:
        return body.get("status") in ("queued", "in_progress") and body.get("usage") is None

    def stream_usage(self, injected_usage: bool = False, usage_object: Callable[[dict[str, Any]], Any] | None = None) -> StreamUsage:
        return ResponsesStreamUsage()
