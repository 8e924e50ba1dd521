"""OpenAI Responses: ``POST /v1/responses``.

JSON (``application/json``): the ``response`` object -- ``id`` (``resp_…``), ``object: "response"``,
``created_at``, ``status`` (``completed``, or ``incomplete`` with
``incomplete_details: {"reason": "max_output_tokens"}`` when cut), ``model`` (snapshot), ``output``
(a ``reasoning`` item when reasoning tokens > 0, then a ``message`` item with one ``output_text``
part, or a ``function_call`` item), ``usage`` (see ``openai_base.responses_usage``) and the echoed
request settings, with the key set of recording 17.

SSE (``text/event-stream; charset=utf-8``): ``event: <type>\\ndata: <json>\\n\\n`` with a
``sequence_number`` from 0::

    response.created, response.in_progress,
    [response.output_item.added, response.output_item.done]            (reasoning item, if any)
    response.output_item.added, response.content_part.added,
    response.output_text.delta*, response.output_text.done, response.content_part.done,
    response.output_item.done                                           (message)
    | response.output_item.added, response.function_call_arguments.delta*,
      response.function_call_arguments.done, response.output_item.done  (tool call)
    response.completed | response.incomplete

Usage appears only in the final event (``usage: null`` before).

Request fields read: ``model`` (required), ``instructions``, ``input`` (string or items),
``max_output_tokens`` (cap), ``stream``, ``tools`` / ``tool_choice``, and settings echoed back.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from aiohttp import web

from .common import (Answer, EventStream, RequestError, Turn, compact, hex_id, json_response, random_id,
                     split_deltas, split_fixed)
from .openai_base import OpenAIDialect, pick_function, responses_usage, text_of


class OpenAIResponses(OpenAIDialect):
    """The Responses dialect."""

    def read(self, payload: dict[str, Any], request: web.Request) -> Turn:
        model = self.require_model(payload, RequestError(
            400, "invalid_request", "Missing required parameter: 'model'.", "model"))
        texts: list[str] = []
        instructions = payload.get("instructions")
        if isinstance(instructions, str) and instructions:
            texts.append(instructions)
        raw_input = payload.get("input")
        items: list[dict[str, Any]] = []
        if isinstance(raw_input, str):
            items = [{"role": "user", "content": raw_input}]
        elif isinstance(raw_input, list):
            items = [i for i in raw_input if isinstance(i, dict)]
        last_user = ""
        for item in items:
            text = item["output"] if isinstance(item.get("output"), str) else text_of(item.get("content"))
            texts.append(text)
            if item.get("role") == "user" or item.get("type") == "function_call_output":
                last_user = text
        after_tool = bool(items) and items[-1].get("type") == "function_call_output"
        tool = None if after_tool else pick_function(payload.get("tools"), payload.get("tool_choice"), nested=False)
        cap = payload.get("max_output_tokens")
        return Turn(model, texts, last_user, cap if isinstance(cap, int) else None,
                    payload.get("stream") is True, tool, payload)

    async def respond(self, request: web.Request, answer: Answer) -> web.StreamResponse:
        headers = self.response_headers(request)
        resp_id, created = hex_id("resp_", 24), int(time.time())
        status = "incomplete" if answer.truncated else "completed"
        items = _output_items(answer, status)

        def response(state: str, output: list[dict[str, Any]], usage: dict[str, Any] | None) -> dict[str, Any]:
            return _response_object(answer, resp_id, created, state, output, usage)

        if not answer.turn.stream:
            body = response(status, items, responses_usage(answer.usage))
            return json_response(body, 200, headers, answer.control, indent=2)

        stream = await EventStream.open(request, headers, answer.control, "text/event-stream; charset=utf-8")
        seq = 0

        async def emit(type_: str, **fields: Any) -> None:
            nonlocal seq
            data = {"type": type_, "sequence_number": seq, **fields}
            seq += 1
            await stream.send(f"event: {type_}\ndata: {compact(data)}\n\n".encode())

        await emit("response.created", response=response("in_progress", [], None))
        await emit("response.in_progress", response=response("in_progress", [], None))
        for index, item in enumerate(items):
            if item["type"] == "reasoning":
                await emit("response.output_item.added", output_index=index, item=item)
                await emit("response.output_item.done", output_index=index, item=item)
            elif item["type"] == "function_call":
                await emit("response.output_item.added", output_index=index,
                           item={**item, "status": "in_progress", "arguments": ""})
                for piece in split_fixed(item["arguments"]):
                    await emit("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                               delta=piece, obfuscation=_padding())
                await emit("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                           arguments=item["arguments"])
                await emit("response.output_item.done", output_index=index, item=item)
            else:
                part = item["content"][0]
                where = {"item_id": item["id"], "output_index": index, "content_index": 0}
                await emit("response.output_item.added", output_index=index,
                           item={**item, "status": "in_progress", "content": []})
                await emit("response.content_part.added", **where, part={**part, "text": ""})
                for piece in split_deltas(part["text"]) if part["text"] else []:
                    await emit("response.output_text.delta", **where, delta=piece, logprobs=[],
                               obfuscation=_padding())
                await emit("response.output_text.done", **where, text=part["text"], logprobs=[])
                await emit("response.content_part.done", **where, part=part)
                await emit("response.output_item.done", output_index=index, item=item)
        final = "response.incomplete" if answer.truncated else "response.completed"
        await emit(final, response=response(status, items, responses_usage(answer.usage)))
        return await stream.close()


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _padding() -> str:
    return random_id("", secrets.randbelow(16))


def _output_items(answer: Answer, status: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if answer.usage.reasoning:
        items.append({"id": hex_id("rs_", 24), "type": "reasoning", "summary": []})
    if answer.tool_call:
        items.append({"id": hex_id("fc_", 24), "type": "function_call", "status": "completed",
                      "arguments": answer.tool_call.arguments, "call_id": random_id("call_", 24),
                      "name": answer.tool_call.name})
    else:
        items.append({"id": hex_id("msg_", 24), "type": "message", "status": status,
                      "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": answer.text}],
                      "role": "assistant"})
    return items


def _response_object(answer: Answer, resp_id: str, created: int, status: str, output: list[dict[str, Any]],
                     usage: dict[str, Any] | None) -> dict[str, Any]:
    """The ``response`` object, echoing the request's settings (defaults as OpenAI fills them)."""
    p = answer.turn.payload
    reasoning = p.get("reasoning") if isinstance(p.get("reasoning"), dict) else {}
    is_reasoning_model = answer.model.startswith(("o1", "o3", "o4", "gpt-5"))
    tier = p.get("service_tier") if p.get("service_tier") in ("flex", "priority") else "default"
    return {
        "id": resp_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": p.get("instructions"),
        "max_output_tokens": p.get("max_output_tokens"),
        "model": answer.model,
        "output": output,
        "parallel_tool_calls": p.get("parallel_tool_calls", True),
        "previous_response_id": p.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort") or ("medium" if is_reasoning_model else None),
                      "summary": reasoning.get("summary")},
        "service_tier": tier,
        "store": p.get("store", True),
        "temperature": _number(p.get("temperature"), 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": p.get("tool_choice", "auto"),
        "tools": p.get("tools", []),
        "top_p": _number(p.get("top_p"), 1.0),
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": p.get("metadata") or {},
    }
