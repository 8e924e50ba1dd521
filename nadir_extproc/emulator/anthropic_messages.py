"""Anthropic Messages: ``POST /v1/messages`` (``?beta=true`` accepted, as the SDK's beta client sends).

JSON (``application/json``)::

    {"id": "msg_01…", "type": "message", "role": "assistant", "model": <snapshot>,
     "content": [{"type": "text", "text": str}] | [{"type": "tool_use", "id", "name", "input"}],
     "stop_reason": "end_turn" | "max_tokens" | "tool_use", "stop_sequence": null,
     "usage": {"input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
               "cache_creation": {"ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"},
               "output_tokens", "service_tier": "standard", "inference_geo": "not_available"}}

Counting rule: ``input_tokens`` EXCLUDES cache reads and writes (they are reported separately);
``cache_creation`` splits writes into 5-minute and 1-hour TTL; thinking tokens are inside ``output_tokens`` (no
thinking block is emitted).

SSE (``text/event-stream; charset=utf-8``; ``event: <type>\\ndata: <json>\\n\\n``), as recording 30:
``message_start`` (usage with the input counts and ``output_tokens: 1``), ``content_block_start``,
``ping``, ``content_block_delta``* (``text_delta`` or ``input_json_delta``), ``content_block_stop``,
``message_delta`` (stop_reason and usage: input counts and the final ``output_tokens``),
``message_stop``.

Errors: ``{"type": "error", "error": {"type", "message"}, "request_id"}``; unknown model -> 404
``not_found_error`` with message ``model: <name>`` (recording 34).

Request fields read: ``model``, ``max_tokens`` and ``messages`` (all required), ``system``,
``stream``, ``tools`` / ``tool_choice``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .common import (Answer, Dialect, EventStream, RequestError, ToolSpec, Turn, compact, json_response, random_id,
                     split_deltas, split_fixed)
from .control import EmulatedUsage

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
                529: "overloaded_error"}
_FORCED_MESSAGES = {400: "Invalid request", 401: "invalid x-api-key",
                    403: "Your API key does not have permission to use the specified resource.",
                    404: "Not found", 413: "Request exceeds the maximum allowed number of bytes.",
                    429: "Number of request tokens has exceeded your per-minute rate limit",
                    500: "Internal server error", 529: "Overloaded"}


def _text_of(content: Any) -> str:
    """Text of a message ``content`` or ``system``: a string, or text blocks and tool_result contents."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    out = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            out.append(block["text"])
        elif block.get("type") == "tool_result":
            out.append(_text_of(block.get("content")))
    return "".join(out)


def _has_tool_result(content: Any) -> bool:
    return isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)


def _pick_tool(tools: Any, tool_choice: Any) -> ToolSpec | None:
    """First custom tool (one with ``input_schema``), or the one named by ``tool_choice: {"type": "tool"}``;
    None for ``tool_choice: {"type": "none"}``."""
    if not isinstance(tools, list):
        return None
    choice = tool_choice if isinstance(tool_choice, dict) else {}
    if choice.get("type") == "none":
        return None
    wanted = choice.get("name") if choice.get("type") == "tool" else None
    for t in tools:
        if isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("input_schema"), dict):
            if wanted is None or t["name"] == wanted:
                return ToolSpec(t["name"], t["input_schema"])
    return None


def anthropic_usage(u: EmulatedUsage) -> dict[str, Any]:
    """Message usage: ``input_tokens`` is the uncached input only."""
    return {
        "input_tokens": u.input,
        "cache_creation_input_tokens": u.all_cache_write,
        "cache_read_input_tokens": u.cache_read,
        "cache_creation": {"ephemeral_5m_input_tokens": u.cache_write, "ephemeral_1h_input_tokens": u.cache_write_1h},
        "output_tokens": u.output,
        "service_tier": "standard",
        "inference_geo": "not_available",
    }


class AnthropicMessages(Dialect):
    """The Messages dialect."""

    provider = "anthropic"

    def headers(self) -> dict[str, str]:
        return {
            "request-id": random_id("req_011C", 20),
            "anthropic-organization-id": str(uuid.uuid4()),
            "server": "cloudflare",
        }

    def error_body(self, err: RequestError, headers: Mapping[str, str]) -> dict[str, Any]:
        type_ = _ERROR_TYPES.get(err.status, "api_error" if err.status >= 500 else "invalid_request_error")
        if err.kind == "model_not_found":
            message = f"model: {err.model}"
        elif err.kind == "forced":
            message = _FORCED_MESSAGES.get(err.status, "Emulated error")
        else:
            message = err.message
        return {"type": "error", "error": {"type": type_, "message": message}, "request_id": headers["request-id"]}

    def read(self, payload: dict[str, Any], request: web.Request) -> Turn:
        for field in ("model", "max_tokens", "messages"):
            if field not in payload:
                raise RequestError(400, "invalid_request", f"{field}: Field required", field)
        model, cap, messages = payload["model"], payload["max_tokens"], payload["messages"]
        if not isinstance(model, str) or not model:
            raise RequestError(400, "invalid_request", "model: Input should be a valid string", "model")
        if type(cap) is not int or cap < 1:
            raise RequestError(400, "invalid_request", "max_tokens: Input should be a valid integer greater than 0")
        if not isinstance(messages, list):
            raise RequestError(400, "invalid_request", "messages: Input should be a valid list", "messages")
        msgs = [m for m in messages if isinstance(m, dict)]
        texts = ([_text_of(payload["system"])] if payload.get("system") else []) + [
            _text_of(m.get("content")) for m in msgs]
        last_user = next((_text_of(m.get("content")) for m in reversed(msgs) if m.get("role") == "user"), "")
        after_tool = bool(msgs) and _has_tool_result(msgs[-1].get("content"))
        tool = None if after_tool else _pick_tool(payload.get("tools"), payload.get("tool_choice"))
        return Turn(model, texts, last_user, cap, payload.get("stream") is True, tool, payload)

    async def respond(self, request: web.Request, answer: Answer) -> web.StreamResponse:
        headers = self.headers()
        msg_id = random_id("msg_01", 22)
        stop = "tool_use" if answer.tool_call else ("max_tokens" if answer.truncated else "end_turn")
        tool_id = random_id("toolu_01", 22)
        usage = anthropic_usage(answer.usage)
        if not answer.turn.stream:
            if answer.tool_call:
                content = [{"type": "tool_use", "id": tool_id, "name": answer.tool_call.name,
                            "input": answer.tool_call.input}]
            else:
                content = [{"type": "text", "text": answer.text}]
            body = {"id": msg_id, "type": "message", "role": "assistant", "model": answer.model, "content": content,
                    "stop_reason": stop, "stop_sequence": None, "usage": usage}
            return json_response(body, 200, headers, answer.control)

        headers["cache-control"] = "no-cache"
        stream = await EventStream.open(request, headers, answer.control, "text/event-stream; charset=utf-8")

        async def emit(type_: str, **fields: Any) -> None:
            await stream.send(f"event: {type_}\ndata: {compact({'type': type_, **fields})}\n\n".encode())

        await emit("message_start", message={
            "model": answer.model, "id": msg_id, "type": "message", "role": "assistant", "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {**usage, "output_tokens": min(1, answer.usage.output)}})
        if answer.tool_call:
            block = {"type": "tool_use", "id": tool_id, "name": answer.tool_call.name, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in split_fixed(answer.tool_call.arguments)]
        else:
            block = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in split_deltas(answer.text)] if answer.text else []
        await emit("content_block_start", index=0, content_block=block)
        await emit("ping")
        for delta in deltas:
            await emit("content_block_delta", index=0, delta=delta)
        await emit("content_block_stop", index=0)
        await emit("message_delta", delta={"stop_reason": stop, "stop_sequence": None}, usage={
            "input_tokens": usage["input_tokens"],
            "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
            "cache_read_input_tokens": usage["cache_read_input_tokens"],
            "output_tokens": usage["output_tokens"]})
        await emit("message_stop")
        return await stream.close()

