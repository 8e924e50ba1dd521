"""What telemetry reads from request and response bodies (pure; called by the processor).

``note_request`` and ``note_response_content`` copy the few values a span needs onto the
``Outcome``: request parameters and — only when content capture is opted in — the messages
(response id and finish reasons are the dialect's: ``Dialect.response_info``). Nothing here keeps prompt text unless ``capture_content`` is true, and captured text
goes through ``redact_secrets`` first (shared case 24: API keys pasted into prompts never reach a
span). Which body field holds what is each dialect's (``Dialect.param_keys``, ``input_turns``,
``system_content``, ``output_turns``); this module turns those values into the OTel GenAI
attributes (semconv v1.41.1).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from nadir_extproc.dialects.base import Dialect
from nadir_extproc.record import Outcome
from nadir_extproc.telemetry import names as n

#: A dialect's parameter name (``Dialect.param_keys``) -> its ``gen_ai.request.*`` attribute.
_ATTR: dict[str, str] = {
    "max_tokens": n.REQUEST_MAX_TOKENS,
    "temperature": n.REQUEST_TEMPERATURE,
    "top_p": n.REQUEST_TOP_P,
    "top_k": n.REQUEST_TOP_K,
    "frequency_penalty": n.REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": n.REQUEST_PRESENCE_PENALTY,
    "seed": n.REQUEST_SEED,
    "choice_count": n.REQUEST_CHOICE_COUNT,
    "stop_sequences": n.REQUEST_STOP_SEQUENCES,
}


def _number(v: Any, kind: str) -> int | float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if kind == "int":
        return int(v) if float(v).is_integer() else None
    return float(v)


def request_params(body: Mapping[str, Any], dialect: Dialect) -> dict[str, Any]:
    """``gen_ai.request.*`` attributes for the parameters present in a request body.

    ``body`` is the parsed JSON request of ``dialect``'s API; which keys hold which parameter is
    the dialect's (``Dialect.param_keys`` / ``param_sources``: Gemini's ``generationConfig``).
    Values of the wrong type (``null``, strings for numbers, booleans) are left out. Returns
    attribute name -> int | float | list[str]; ``gen_ai.request.choice.count`` only when not 1
    (the convention's rule). Never raises on odd input.
    """
    out: dict[str, Any] = {}
    for src in dialect.param_sources(body):  # type: ignore[arg-type]
        for key, param, kind in dialect.param_keys:
            attr = _ATTR[param]
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


def input_messages(body: Mapping[str, Any], dialect: Dialect) -> dict[str, str]:
    """Opt-in content: ``gen_ai.input.messages`` (and ``gen_ai.system_instructions``) as JSON
    strings in the convention's role/parts shape, from the messages ``dialect`` reads
    (``Dialect.input_turns`` / ``system_content``), with key-shaped tokens redacted
    (``redact_secrets``)."""
    out: dict[str, str] = {}
    msgs = [{"role": role, "parts": _parts(content)} for role, content in dialect.input_turns(body)]  # type: ignore[arg-type]
    if msgs:
        out[n.INPUT_MESSAGES] = redact_secrets(json.dumps(msgs, ensure_ascii=False))
    system = dialect.system_content(body)  # type: ignore[arg-type]
    if system is not None:
        parts = _parts(system)
        if parts:
            out[n.SYSTEM_INSTRUCTIONS] = redact_secrets(json.dumps(parts, ensure_ascii=False))
    return out


def output_messages(body: Mapping[str, Any], dialect: Dialect) -> dict[str, str]:
    """Opt-in content: ``gen_ai.output.messages`` as a JSON string from a JSON response body
    (``Dialect.output_turns``), with key-shaped tokens redacted (``redact_secrets``)."""
    msgs = []
    for t in dialect.output_turns(body):  # type: ignore[arg-type]
        m = {"role": t["role"], "parts": _parts(t.get("content"))}
        if "finish_reason" in t:
            m["finish_reason"] = t["finish_reason"]
        msgs.append(m)
    return {n.OUTPUT_MESSAGES: redact_secrets(json.dumps(msgs, ensure_ascii=False))} if msgs else {}


# ----------------------------------------------------------------------------- processor hooks
def note_request(out: Outcome, body: Mapping[str, Any], dialect: Dialect, capture_content: bool = False) -> None:
    """Copy request parameters (and, if opted in, the input messages) onto ``out`` (an
    ``Outcome``), as ``dialect`` reads them. Never raises."""
    try:
        out.request_params = request_params(body, dialect)
        if capture_content:
            out.content = {**(out.content or {}), **input_messages(body, dialect)}
    except Exception:  # noqa: BLE001 — telemetry must not break the request path
        pass


def note_response_content(out: Outcome, body: Mapping[str, Any], dialect: Dialect) -> None:
    """Opt-in content: copy the output messages onto ``out.content`` (the response id and
    finish reasons come from the dialect's ``response_info``). Never raises."""
    try:
        out.content = {**(out.content or {}), **output_messages(body, dialect)}
    except Exception:  # noqa: BLE001
        pass
