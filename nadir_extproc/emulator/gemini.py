"""Gemini: ``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent``.

JSON (``application/json; charset=UTF-8``, indented as Google serves it)::

    {"candidates": [{"content": {"parts": [{"text": str}] | [{"functionCall": {"name", "args"}}],
                                 "role": "model"},
                     "finishReason": "STOP" | "MAX_TOKENS", "index": 0}],
     "usageMetadata": {"promptTokenCount", "candidatesTokenCount", "totalTokenCount",
                       ["cachedContentTokenCount",] "promptTokensDetails": [{"modality": "TEXT", "tokenCount"}],
                       ["cacheTokensDetails",] ["thoughtsTokenCount",] "serviceTier": "standard"},
     "modelVersion": <model>, "responseId": str}

Counting rule: ``promptTokenCount`` is ALL input; ``cachedContentTokenCount`` is the cache-read subset
of it (cache writes have no Gemini field and are counted as plain prompt tokens);
``thoughtsTokenCount`` is separate from ``candidatesTokenCount``; ``totalTokenCount`` is the sum of
prompt, candidates and thoughts. Zero-valued optional counts are omitted, as Google's JSON does.

``:streamGenerateContent?alt=sse`` (``text/event-stream``): ``data: <chunk>\\r\\n\\r\\n`` per chunk
(CRLF framing, as recording 38); every chunk carries ``usageMetadata`` with cumulative
``candidatesTokenCount`` (proportional to the bytes sent so far; the last chunk has the final
counts) and only the last has ``finishReason``. Without ``alt=sse`` the chunks come as one JSON array.

Errors: ``{"error": {"code": <status>, "message", "status": "INVALID_ARGUMENT" | "NOT_FOUND" | ...}}``.

Request fields read: ``contents`` (required), ``systemInstruction``,
``generationConfig.maxOutputTokens`` (cap), ``tools[].functionDeclarations`` /
``toolConfig.functionCallingConfig.mode``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .common import (Answer, Dialect, EventStream, RequestError, ToolSpec, Turn, elapsed_ms, json_response,
                     split_deltas)
from .control import EmulatedUsage

_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 503: "UNAVAILABLE",
           504: "DEADLINE_EXCEEDED"}
_FORCED_MESSAGES = {400: "Request contains an invalid argument.",
                    401: "API key not valid. Please pass a valid API key.",
                    403: "The caller does not have permission",
                    429: "Resource has been exhausted (e.g. check quota).",
                    500: "An internal error has occurred. Please retry or report in "
                         "https://developers.generativeai.google/guide/troubleshooting",
                    503: "The model is overloaded. Please try again later."}
_METHODS = ("generateContent", "streamGenerateContent")
_CHUNK_WORDS = 4  # words per streamed chunk


def _text_of(content: Any) -> str:
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return ""
    out = []
    for p in parts:
        if isinstance(p, dict) and isinstance(p.get("text"), str):
            out.append(p["text"])
        elif isinstance(p, dict) and isinstance(p.get("functionResponse"), dict):
            out.append(json.dumps(p["functionResponse"].get("response", {}), separators=(",", ":")))
    return "".join(out)


def _pick_tool(tools: Any, tool_config: Any) -> ToolSpec | None:
    mode = ((tool_config or {}).get("functionCallingConfig") or {}).get("mode") if isinstance(tool_config, dict) else None
    if not isinstance(tools, list) or mode == "NONE":
        return None
    for t in tools:
        for decl in (t.get("functionDeclarations") or []) if isinstance(t, dict) else []:
            if isinstance(decl, dict) and isinstance(decl.get("name"), str):
                return ToolSpec(decl["name"], decl.get("parameters") or {})
    return None


def gemini_usage(u: EmulatedUsage, candidates: int | None = None) -> dict[str, Any]:
    """usageMetadata; ``candidates`` overrides the candidate count (cumulative stream chunks)."""
    prompt = u.all_input
    cand = u.output - u.reasoning if candidates is None else candidates
    meta: dict[str, Any] = {"promptTokenCount": prompt, "candidatesTokenCount": cand,
                            "totalTokenCount": prompt + cand + u.reasoning}
    if u.cache_read:
        meta["cachedContentTokenCount"] = u.cache_read
    meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    if u.cache_read:
        meta["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": u.cache_read}]
    if u.reasoning:
        meta["thoughtsTokenCount"] = u.reasoning
    meta["serviceTier"] = "standard"
    return meta


class Gemini(Dialect):
    """The generateContent dialect (model and method come from the URL)."""

    provider = "gemini"

    def headers(self) -> dict[str, str]:
        return {"vary": "Origin, X-Origin, Referer", "server-timing": "gfet4t7; dur=0",
                "x-content-type-options": "nosniff", "x-frame-options": "SAMEORIGIN", "x-xss-protection": "0",
                "server": "scaffolding on HTTPServer2"}

    def error_body(self, err: RequestError, headers: Mapping[str, str]) -> dict[str, Any]:
        if err.kind == "model_not_found":
            message = (f"models/{err.model} is not found for API version v1beta, or is not supported for "
                       f"generateContent. Call ListModels to see the list of available models and their supported "
                       f"methods.")
        elif err.kind == "invalid_json":
            message = "Invalid JSON payload received. Unexpected token."
        elif err.kind == "forced":
            message = _FORCED_MESSAGES.get(err.status, "Emulated error.")
        else:
            message = err.message
        status = _STATUS.get(err.status, "INTERNAL" if err.status >= 500 else "FAILED_PRECONDITION")
        return {"error": {"code": err.status, "message": message, "status": status}}

    def error_format(self, err: RequestError) -> tuple[int | None, str]:
        return 2, "application/json; charset=UTF-8"

    def read(self, payload: dict[str, Any], request: web.Request) -> Turn:
        model, method = request.match_info["model"], request.match_info["method"]
        if method not in _METHODS:
            raise RequestError(404, "invalid_request", f"Method not found: {method}")
        contents = payload.get("contents")
        if not isinstance(contents, list) or not contents:
            raise RequestError(400, "invalid_request",
                               "* GenerateContentRequest.contents: contents is not specified\n", "contents")
        items = [c for c in contents if isinstance(c, dict)]
        system = payload.get("systemInstruction")
        texts = ([_text_of(system)] if isinstance(system, dict) else []) + [_text_of(c) for c in items]
        last_user = next((_text_of(c) for c in reversed(items) if c.get("role", "user") == "user"), "")
        last_parts = items[-1].get("parts") if items else None
        after_tool = isinstance(last_parts, list) and any(
            isinstance(p, dict) and "functionResponse" in p for p in last_parts)
        tool = None if after_tool else _pick_tool(payload.get("tools"), payload.get("toolConfig"))
        config = payload.get("generationConfig") if isinstance(payload.get("generationConfig"), dict) else {}
        cap = config.get("maxOutputTokens")
        return Turn(model, texts, last_user, cap if isinstance(cap, int) else None,
                    method == "streamGenerateContent", tool, payload)

    async def respond(self, request: web.Request, answer: Answer) -> web.StreamResponse:
        headers = self.headers()
        headers["server-timing"] = f"gfet4t7; dur={elapsed_ms(request)}"
        response_id = secrets.token_urlsafe(17)[:23]
        finish = "MAX_TOKENS" if answer.truncated else "STOP"

        def chunk(parts: list[dict[str, Any]], usage: dict[str, Any], last: bool) -> dict[str, Any]:
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
            if last:
                candidate["finishReason"] = finish
            candidate["index"] = 0
            return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": answer.model,
                    "responseId": response_id}

        if answer.tool_call:
            pieces: list[dict[str, Any]] = [
                {"functionCall": {"name": answer.tool_call.name, "args": answer.tool_call.input}}]
            sizes = [1]
        elif not answer.turn.stream:
            pieces, sizes = [{"text": answer.text}], [1]
        else:
            words = split_deltas(answer.text)
            groups = ["".join(words[i:i + _CHUNK_WORDS]) for i in range(0, len(words), _CHUNK_WORDS)]
            pieces = [{"text": g} for g in groups]
            sizes = [len(g.encode()) for g in groups]
        if not answer.turn.stream:
            body = chunk(pieces, gemini_usage(answer.usage), True)
            return json_response(body, 200, headers, answer.control, indent=2,
                                 content_type="application/json; charset=UTF-8")

        final = answer.usage.output - answer.usage.reasoning
        total, sent = sum(sizes) or 1, 0
        chunks = []
        for i, (part, size) in enumerate(zip(pieces, sizes, strict=True)):
            sent += size
            last = i == len(pieces) - 1
            chunks.append(chunk([part], gemini_usage(answer.usage, final if last else final * sent // total), last))
        if request.query.get("alt") != "sse":
            return json_response(chunks, 200, headers, answer.control, indent=2,
                                 content_type="application/json; charset=UTF-8")
        headers["content-disposition"] = "attachment"
        stream = await EventStream.open(request, headers, answer.control, "text/event-stream")
        for c in chunks:
            data = json.dumps(c, ensure_ascii=False, separators=(",", ": "))
            await stream.send(f"data: {data}\r\n\r\n".encode())
        return await stream.close()
