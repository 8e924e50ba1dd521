"""OpenAI Chat Completions: ``POST /v1/chat/completions``.

JSON (``application/json``)::

    {"id": "chatcmpl-…", "object": "chat.completion", "created": <unix s>, "model": <snapshot>,
     "choices": [{"index": 0, "message": {"role": "assistant", "content": str | null,
                  "refusal": null, "annotations": [] [, "tool_calls": [...]]},
                  "finish_reason": "stop" | "length" | "tool_calls"}],
     "usage": {...see openai_base.chat_usage...}, "service_tier": "default", "system_fingerprint": null}

SSE (``"stream": true``; ``text/event-stream; charset=utf-8``): ``data: <chunk>\\n\\n`` per
``chat.completion.chunk`` -- a role chunk, one chunk per word, a finish chunk with ``delta: {}``,
then, only when ``stream_options.include_usage`` is true, a usage chunk with ``"choices": []``;
finally ``data: [DONE]\\n\\n``. With include_usage every chunk carries ``"usage": null``; without it
no chunk has a ``usage`` key (recordings 03 and 04). Each chunk carries random ``obfuscation``
padding unless ``stream_options.include_obfuscation`` is false.

Request fields read: ``model`` (required), ``messages`` (required), ``max_completion_tokens`` /
``max_tokens`` (cap), ``stream``, ``stream_options``, ``tools`` / ``tool_choice``.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from aiohttp import web

from .common import (Answer, EventStream, RequestError, Turn, compact, json_response, random_id, split_deltas,
                     split_fixed)
from .openai_base import OpenAIDialect, chat_usage, pick_function, text_of


class OpenAIChat(OpenAIDialect):
    """The Chat Completions dialect."""

    def read(self, payload: dict[str, Any], request: web.Request) -> Turn:
        model = self.require_model(payload, RequestError(400, "invalid_request", "you must provide a model parameter"))
        messages = payload.get("messages")
        if not isinstance(messages, list):
            raise RequestError(400, "invalid_request", "Missing required parameter: 'messages'.", "messages")
        msgs = [m for m in messages if isinstance(m, dict)]
        texts = [text_of(m.get("content")) for m in msgs]
        last_user = next((text_of(m.get("content")) for m in reversed(msgs) if m.get("role") in ("user", "tool")), "")
        cap = next((v for v in (payload.get("max_completion_tokens"), payload.get("max_tokens")) if type(v) is int), None)
        after_tool = bool(msgs) and msgs[-1].get("role") == "tool"
        tool = None if after_tool else pick_function(payload.get("tools"), payload.get("tool_choice"), nested=True)
        return Turn(model, texts, last_user, cap, payload.get("stream") is True, tool, payload)

    async def respond(self, request: web.Request, answer: Answer) -> web.StreamResponse:
        headers = self.response_headers(request)
        completion_id, created = random_id("chatcmpl-", 29), int(time.time())
        call_id = random_id("call_", 24)
        finish = "tool_calls" if answer.tool_call else ("length" if answer.truncated else "stop")
        if not answer.turn.stream:
            message: dict[str, Any] = {"role": "assistant", "content": answer.text or None, "refusal": None,
                                       "annotations": []}
            if answer.tool_call:
                message["content"] = None
                message["tool_calls"] = [{"id": call_id, "type": "function", "function": {
                    "name": answer.tool_call.name, "arguments": answer.tool_call.arguments}}]
            body = {"id": completion_id, "object": "chat.completion", "created": created, "model": answer.model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": chat_usage(answer.usage), "service_tier": "default", "system_fingerprint": None}
            return json_response(body, 200, headers, answer.control, indent=2)

        opts = answer.turn.payload.get("stream_options") or {}
        include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
        obfuscate = not (isinstance(opts, dict) and opts.get("include_obfuscation") is False)

        def chunk(choices: list[dict[str, Any]], usage: Any = None) -> bytes:
            obj: dict[str, Any] = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                                   "model": answer.model, "service_tier": "default", "system_fingerprint": None,
                                   "choices": choices}
            if include_usage:
                obj["usage"] = usage
            if obfuscate:
                obj["obfuscation"] = random_id("", secrets.randbelow(16))
            return b"data: " + compact(obj).encode() + b"\n\n"

        def delta(d: dict[str, Any], finish_reason: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": d, "finish_reason": finish_reason}]

        stream = await EventStream.open(request, headers, answer.control, "text/event-stream; charset=utf-8")
        if answer.tool_call:
            call = answer.tool_call
            await stream.send(chunk(delta({"role": "assistant", "content": None, "tool_calls": [
                {"index": 0, "id": call_id, "type": "function", "function": {"name": call.name, "arguments": ""}}],
                "refusal": None})))
            for piece in split_fixed(call.arguments):
                await stream.send(chunk(delta({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})))
        else:
            await stream.send(chunk(delta({"role": "assistant", "content": "", "refusal": None})))
            if answer.text:
                for piece in split_deltas(answer.text):
                    await stream.send(chunk(delta({"content": piece})))
        await stream.send(chunk(delta({}, finish)))
        if include_usage:
            await stream.send(chunk([], chat_usage(answer.usage)))
        await stream.send(b"data: [DONE]\n\n")
        return await stream.close()
