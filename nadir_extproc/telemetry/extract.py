"""What telemetry reads from request and response bodies (pure; called by the processor).

``note_request`` and ``note_response_content`` copy the few values a span needs onto the
``Outcome``: request parameters and — only when content capture is opted in — the messages
(response id and finish reasons are the dialect's: ``Dialect.response_info``). Nothing here keeps prompt text unless ``capture_content`` is true, and captured text
goes through ``redact_secrets`` first (shared case 24: API keys pasted into prompts never reach a
span). Field names per API are from the providers' API references (OpenAI Chat Completions and
Responses, Anthropic Messages, Gemini ``generateContent``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from nadir_extproc.record import Outcome
from nadir_extproc.telemetry import names as n

# body key -> (attribute, kind). First key present wins for the same attribute.
_PARAMS: tuple[tuple[str, str, str], ...] = (
    ("max_tokens", n.REQUEST_MAX_TOKENS, "int"),  # chat (legacy), anthropic
    ("max_completion_tokens", n.REQUEST_MAX_TOKENS, "int"),  # chat
    ("max_output_tokens", n.REQUEST_MAX_TOKENS, "int"),  # responses
    ("maxOutputTokens", n.REQUEST_MAX_TOKENS, "int"),  # gemini generationConfig
    ("temperature", n.REQUEST_TEMPERATURE, "float"),
    ("top_p", n.REQUEST_TOP_P, "float"),
    ("topP", n.REQUEST_TOP_P, "float"),
    ("top_k", n.REQUEST_TOP_K, "float"),
    ("topK", n.REQUEST_TOP_K, "float"),
    ("frequency_penalty", n.REQUEST_FREQUENCY_PENALTY, "float"),
    ("frequencyPenalty", n.REQUEST_FREQUENCY_PENALTY, "float"),
    ("presence_penalty", n.REQUEST_PRESENCE_PENALTY, "float"),
    ("presencePenalty", n.REQUEST_PRESENCE_PENALTY, "float"),
    ("seed", n.REQUEST_SEED, "int"),
    ("n", n.REQUEST_CHOICE_COUNT, "int"),
    ("candidateCount", n.REQUEST_CHOICE_COUNT, "int"),
    ("stop", n.REQUEST_STOP_SEQUENCES, "strs"),
    ("stop_sequences", n.REQUEST_STOP_SEQUENCES, "strs"),
    ("stopSequences", n.REQUEST_STOP_SEQUENCES, "strs"),
)


def _number(v: Any, kind: str) -> int | float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if kind == "int":
        return int(v) if float(v).is_integer() else None
    return float(v)


def request_params(body: Mapping[str, Any]) -> dict[str, Any]:
    """``gen_ai.request.*`` attributes for the parameters present in a request body.

    ``body`` is the parsed JSON request of any supported API (Gemini's ``generationConfig`` is
    looked into). Values of the wrong type (``null``, strings for numbers, booleans) are left out.
    Returns attribute name -> int | float | list[str]; ``gen_ai.request.choice.count`` only when
    not 1 (the convention's rule). Never raises on odd input.
    """
    out: dict[str, Any] = {}
    sources: list[Mapping[str, Any]] = [body]
    gc = body.get("generationConfig")
    if isinstance(gc, Mapping):
        sources.append(gc)
    for src in sources:
        for key, attr, kind in _PARAMS:
            if attr in out or key not in src:
                continue
            v = src[key]
            if kind == "strs":
                if isinstance(v, str):
                    out[attr] = [v]
                elif isinstance(v, list) and v and all(isinstance(x, str) for x in v):
                    out[attr] = list(v)
                continue
            num = _number(v, kind)
            if num is not None:
                out[attr] = num
    if out.get(n.REQUEST_CHOICE_COUNT) == 1:
        del out[n.REQUEST_CHOICE_COUNT]
    return out


# ----------------------------------------------------------------------------- content (opt-in)
#: Common provider API-key shapes: OpenAI ``sk-…`` (``sk-proj-…`` too), Anthropic ``sk-ant-…``,
#: Google ``AIza…`` — the prefix, then 6+ key characters, not glued to a preceding letter or digit
#: (so ``task-force`` or ``risk-free`` stay). Shapes from the providers' key formats; shared case 24.
_KEY_SHAPE = re.compile(r"(?<![A-Za-z0-9])(sk-ant-|sk-|AIza)[A-Za-z0-9_\-]{6,}")
REDACTED = "[REDACTED]"


def redact_secrets(text: str) -> str:
    """``text`` with every API-key-shaped token replaced by its prefix + ``[REDACTED]``
    (``sk-proj-abc…`` -> ``sk-[REDACTED]``, ``sk-ant-api03-…`` -> ``sk-ant-[REDACTED]``,
    ``AIzaSy…`` -> ``AIza[REDACTED]``). Applied to captured content before it is put on a span.
    Pure; never raises for a ``str``."""
    return _KEY_SHAPE.sub(lambda m: m.group(1) + REDACTED, text)


def _parts(content: Any) -> list[dict[str, Any]]:
    """Message content (string or list of blocks) -> convention ``parts`` (text parts keep their
    text; other blocks keep only their type)."""
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    if isinstance(content, list):
        for b in content:
            if isinstance(b, str):
                parts.append({"type": "text", "content": b})
            elif isinstance(b, dict):
                text = b.get("text")
                if isinstance(text, str):
                    parts.append({"type": "text", "content": text})
                else:
                    parts.append({"type": str(b.get("type", "unknown"))})
    return parts


def input_messages(body: Mapping[str, Any]) -> dict[str, str]:
    """Opt-in content: ``gen_ai.input.messages`` (and ``gen_ai.system_instructions``) as JSON
    strings in the convention's role/parts shape, from a chat/messages/responses/gemini body, with
    key-shaped tokens redacted (``redact_secrets``)."""
    out: dict[str, str] = {}
    msgs: list[dict[str, Any]] = []
    raw = body.get("messages")
    if raw is None:
        raw = body.get("input")
    if isinstance(raw, str):
        msgs.append({"role": "user", "parts": _parts(raw)})
    elif isinstance(raw, list):
        for m in raw:
            if isinstance(m, dict):
                msgs.append({"role": str(m.get("role", "user")), "parts": _parts(m.get("content"))})
    contents = body.get("contents")
    if isinstance(contents, list):
        for m in contents:
            if isinstance(m, dict):
                msgs.append({"role": str(m.get("role", "user")), "parts": _parts(m.get("parts"))})
    if msgs:
        out[n.INPUT_MESSAGES] = redact_secrets(json.dumps(msgs, ensure_ascii=False))
    system = body.get("system", body.get("instructions"))
    if system is not None:
        parts = _parts(system)
        if parts:
            out[n.SYSTEM_INSTRUCTIONS] = redact_secrets(json.dumps(parts, ensure_ascii=False))
    return out


def output_messages(body: Mapping[str, Any]) -> dict[str, str]:
    """Opt-in content: ``gen_ai.output.messages`` as a JSON string from a JSON response body, with
    key-shaped tokens redacted (``redact_secrets``)."""
    msgs: list[dict[str, Any]] = []
    choices = body.get("choices")
    if isinstance(choices, list):
        for c in choices:
            if isinstance(c, dict) and isinstance(c.get("message"), dict):
                msgs.append({"role": "assistant", "parts": _parts(c["message"].get("content")),
                             "finish_reason": c.get("finish_reason")})
    elif isinstance(body.get("content"), list):
        msgs.append({"role": "assistant", "parts": _parts(body["content"]), "finish_reason": body.get("stop_reason")})
    elif isinstance(body.get("output"), list):
        for item in body["output"]:
            if isinstance(item, dict) and item.get("type") == "message":
                msgs.append({"role": "assistant", "parts": _parts(item.get("content"))})
    elif isinstance(body.get("candidates"), list):
        for c in body["candidates"]:
            if isinstance(c, dict) and isinstance(c.get("content"), dict):
                msgs.append({"role": "assistant", "parts": _parts(c["content"].get("parts")),
                             "finish_reason": c.get("finishReason")})
    return {n.OUTPUT_MESSAGES: redact_secrets(json.dumps(msgs, ensure_ascii=False))} if msgs else {}


# ----------------------------------------------------------------------------- processor hooks
def note_request(out: Outcome, body: Mapping[str, Any], capture_content: bool = False) -> None:
    """Copy request parameters (and, if opted in, the input messages) onto ``out`` (an
    ``Outcome``). Never raises."""
    try:
        out.request_params = request_params(body)
        if capture_content:
            out.content = {**(out.content or {}), **input_messages(body)}
    except Exception:  # noqa: BLE001 — telemetry must not break the request path
        pass


def note_response_content(out: Outcome, body: Mapping[str, Any]) -> None:
    """Opt-in content: copy the output messages onto ``out.content`` (the response id and
    finish reasons come from the dialect's ``response_info``). Never raises."""
    try:
        out.content = {**(out.content or {}), **output_messages(body)}
    except Exception:  # noqa: BLE001
        pass
