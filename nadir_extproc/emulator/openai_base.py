"""What the two OpenAI APIs (Chat Completions and Responses) share: headers, errors, usage fields.

Error body (both APIs): ``{"error": {"message", "type", "param", "code"}}``. The 404 for an unknown
model is ``code: "model_not_found"``, served as ``application/json; charset=utf-8`` and indented by 4
spaces, exactly as recording ``09-openai-chat-error-404-unknown-model`` shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .common import Dialect, RequestError, ToolSpec, elapsed_ms, hex_id
from .control import EmulatedUsage

_INVALID_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
    "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. "
    "If you have trouble figuring out how to fix this, please contact us through our help center at "
    "help.openai.com.)"
)

#: status -> (message, type, code) for ``x-emulator-status``, as OpenAI words them.
_FORCED: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided: sk-emula*****. You can find your API key at "
          "https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model", "invalid_request_error", None),
    404: ("Not found.", "invalid_request_error", None),
    429: ("Rate limit reached for requests per min (RPM): Limit 500, Used 500, Requested 1. "
          "Please try again in 120ms.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


class OpenAIDialect(Dialect):
    """Base of the OpenAI dialects."""

    provider = "openai"

    def headers(self) -> dict[str, str]:
        return {
            "x-request-id": hex_id("req_", 16),
            "openai-organization": "user-emulator",
            "openai-processing-ms": "0",
            "openai-version": "2020-10-01",
            "access-control-expose-headers": "X-Request-ID",
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-limit-tokens": "200000",
            "x-ratelimit-remaining-requests": "499",
            "x-ratelimit-remaining-tokens": "199999",
            "x-ratelimit-reset-requests": "120ms",
            "x-ratelimit-reset-tokens": "0s",
            "x-envoy-upstream-service-time": "0",
            "server": "cloudflare",
        }

    def response_headers(self, request: web.Request) -> dict[str, str]:
        """:meth:`headers` with ``openai-processing-ms`` set to the time spent so far (ms)."""
        headers = self.headers()
        headers["openai-processing-ms"] = str(elapsed_ms(request))
        return headers

    def error_body(self, err: RequestError, headers: Mapping[str, str]) -> dict[str, Any]:
        if err.kind == "invalid_json":
            message, type_, code = _INVALID_JSON, "invalid_request_error", None
        elif err.kind == "model_not_found":
            message = f"The model `{err.model}` does not exist or you do not have access to it."
            type_, code = "invalid_request_error", "model_not_found"
        elif err.kind == "forced":
            fallback = ("Emulated error.", "server_error" if err.status >= 500 else "invalid_request_error", None)
            message, type_, code = _FORCED.get(err.status, fallback)
        else:
            message, type_, code = err.message, "invalid_request_error", None
        return {"error": {"message": message, "type": type_, "param": err.param, "code": code}}

    def error_format(self, err: RequestError) -> tuple[int | None, str]:
        if err.kind == "model_not_found":
            return 4, "application/json; charset=utf-8"
        return 2, "application/json"

    @staticmethod
    def require_model(payload: dict[str, Any], missing: RequestError) -> str:
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise missing
        return model


def text_of(content: Any) -> str:
    """Text of an OpenAI message ``content``: a string, or the ``text`` of each part of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def pick_function(tools: Any, tool_choice: Any, *, nested: bool) -> ToolSpec | None:
    """The function tool to call, or None. ``nested``: Chat shape (``{"function": {...}}``) vs Responses
    (name/parameters at top level). ``tool_choice`` ``"none"`` -> None; a named choice picks that tool;
    otherwise the first function tool is called."""
    if not isinstance(tools, list) or tool_choice == "none":
        return None
    functions = []
    for t in tools:
        if not isinstance(t, dict) or t.get("type") != "function":
            continue
        spec = t.get("function") if nested else t
        if isinstance(spec, dict) and isinstance(spec.get("name"), str):
            functions.append(ToolSpec(spec["name"], spec.get("parameters") or {}))
    wanted = None
    if isinstance(tool_choice, dict):
        wanted = (tool_choice.get("function") or {}).get("name") if nested else tool_choice.get("name")
    for f in functions:
        if wanted is None or f.name == wanted:
            return f
    return None


def chat_usage(u: EmulatedUsage) -> dict[str, Any]:
    """Chat Completions usage: ``prompt_tokens`` INCLUDES cached (and cache-written) tokens;
    ``cached_tokens`` is the cache-read subset; ``cache_write_tokens`` appears only when non-zero
    (as in recording 12); ``reasoning_tokens`` is inside ``completion_tokens``."""
    prompt_details: dict[str, int] = {"cached_tokens": u.cache_read, "audio_tokens": 0}
    if u.all_cache_write:
        prompt_details["cache_write_tokens"] = u.all_cache_write
    return {
        "prompt_tokens": u.all_input,
        "completion_tokens": u.output,
        "total_tokens": u.all_input + u.output,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {
            "reasoning_tokens": u.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def responses_usage(u: EmulatedUsage) -> dict[str, Any]:
    """Responses usage: ``input_tokens`` INCLUDES cached tokens (``input_tokens_details.cached_tokens``);
    ``reasoning_tokens`` is inside ``output_tokens``."""
    details: dict[str, int] = {"cached_tokens": u.cache_read}
    if u.all_cache_write:
        details["cache_write_tokens"] = u.all_cache_write
    return {
        "input_tokens": u.all_input,
        "input_tokens_details": details,
        "output_tokens": u.output,
        "output_tokens_details": {"reasoning_tokens": u.reasoning},
        "total_tokens": u.all_input + u.output,
    }
