"""What every dialect shares: the request pipeline, the reply/usage decision, ids, and HTTP writing.

Pipeline (:func:`serve`), identical for every provider:

1. ``x-emulator-*`` headers parsed (malformed -> 400); ``x-emulator-status`` answers at once with
   that status and the provider's error body.
2. The body must be a JSON object (else 400 ``invalid_json``).
3. The dialect reads it into a :class:`Turn` (missing required fields -> 400).
4. The model must be in :mod:`.models` for this provider (else 404 -- ``auto`` included).
5. The reply (canned text or a tool call) and its usage are decided by :mod:`.tokens` or taken from
   ``x-emulator-usage``, and the dialect writes it as JSON or SSE.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import string
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from .control import Control, ControlError, EmulatedUsage, parse_control
from .models import Provider, resolve_model
from .tokens import Output, canned_reply, cap_output, prompt_tokens, text_tokens

_ALNUM = string.ascii_letters + string.digits

#: ``time.monotonic()`` when the request arrived (set by the app's middleware).
STARTED = web.RequestKey("emulator_started", float)


def elapsed_ms(request: web.Request) -> int:
    """Milliseconds since the request arrived (0 when not known)."""
    started = request.get(STARTED)
    return 0 if started is None else int((time.monotonic() - started) * 1000)


def random_id(prefix: str, n: int, alphabet: str = _ALNUM) -> str:
    """``prefix`` followed by ``n`` random characters of ``alphabet`` (ids are not deterministic)."""
    return prefix + "".join(secrets.choice(alphabet) for _ in range(n))


def hex_id(prefix: str, n_bytes: int) -> str:
    """``prefix`` followed by ``2 * n_bytes`` random hex digits."""
    return prefix + secrets.token_hex(n_bytes)


class RequestError(Exception):
    """The request is invalid for the provider: answered with ``status`` and the provider's error body.

    ``kind`` is one of ``invalid_json``, ``invalid_request``, ``model_not_found``, ``forced`` (the
    status came from ``x-emulator-status``); ``param`` names the offending field when known;
    ``model`` is the requested model name for ``model_not_found``.
    """

    def __init__(self, status: int, kind: str, message: str, param: str | None = None,
                 model: str | None = None):
        super().__init__(message)
        self.status, self.kind, self.message, self.param, self.model = status, kind, message, param, model


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function tool the emulator will call: its name and JSON-schema parameters."""

    name: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Turn:
    """One request as a dialect read it.

    ``texts`` is the prompt text, one string per message (system/instructions included);
    ``cap`` is the output-token cap or None; ``tool`` is the tool to call, or None to answer in text.
    """

    model: str
    texts: list[str]
    last_user_text: str
    cap: int | None
    stream: bool
    tool: ToolSpec | None
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the emulator makes: tool name, arguments as an object and as compact JSON text."""

    name: str
    input: dict[str, Any]

    @property
    def arguments(self) -> str:
        return json.dumps(self.input, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Answer:
    """What to send back: the served model name, text or tool call, usage, and the control headers."""

    turn: Turn
    model: str
    text: str
    tool_call: ToolCall | None
    truncated: bool
    usage: EmulatedUsage
    control: Control


def example_arguments(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments for a tool call: each *required* property filled by type.

    string -> ``"example"``, integer -> ``42``, number -> ``1.5``, boolean -> ``true``,
    array -> ``[]``, object -> ``{}``, anything else -> ``null``.
    """
    by_type = {"string": "example", "integer": 42, "number": 1.5, "boolean": True, "array": [], "object": {}}
    props = schema.get("properties") or {}
    out: dict[str, Any] = {}
    for name in schema.get("required") or []:
        kind = (props.get(name) or {}).get("type")
        out[name] = by_type.get(kind) if isinstance(kind, str) else None
    return out


def decide(turn: Turn, model: str, control: Control) -> Answer:
    """Build the answer for ``turn`` by the rules of :mod:`.tokens` (or the ``x-emulator-usage`` override).

    A tool call is never cut by the output cap: its output tokens are ``text_tokens(name + arguments)``.
    """
    if turn.tool is not None:
        call = ToolCall(turn.tool.name, example_arguments(turn.tool.parameters))
        out = Output("", text_tokens(call.name + call.arguments), False)
    else:
        call = None
        out = cap_output(canned_reply(turn.last_user_text), turn.cap)
    usage = control.usage or EmulatedUsage(input=prompt_tokens(turn.texts), output=out.tokens)
    return Answer(turn, model, out.text, call, out.truncated, usage, control)


class Dialect:
    """One provider API. Subclasses set ``provider`` and implement ``read``, ``error_body``, ``headers``
    and ``respond``; ``error_format`` may be overridden."""

    provider: Provider

    def read(self, payload: dict[str, Any], request: web.Request) -> Turn:
        """Read the request body into a :class:`Turn`; raise :class:`RequestError` when invalid."""
        raise NotImplementedError

    def error_body(self, err: RequestError, headers: Mapping[str, str]) -> dict[str, Any]:
        """The provider's error body for ``err`` (``headers`` are the response headers, for ids)."""
        raise NotImplementedError

    def error_format(self, err: RequestError) -> tuple[int | None, str]:
        """(JSON indent or None for compact, content-type) of the error response."""
        return None, "application/json"

    def headers(self) -> dict[str, str]:
        """Provider headers for any response (request id etc.), without content-type."""
        raise NotImplementedError

    async def respond(self, request: web.Request, answer: Answer) -> web.StreamResponse:
        """Write ``answer`` as the provider would (JSON or SSE)."""
        raise NotImplementedError

    def error_response(self, err: RequestError, control: Control) -> web.Response:
        """The complete error response; 429 also carries ``retry-after: 1`` (seconds)."""
        headers = self.headers()
        if err.status == 429:
            headers["retry-after"] = "1"
        indent, content_type = self.error_format(err)
        return json_response(self.error_body(err, headers), err.status, headers, control,
                             indent=indent, content_type=content_type)


async def serve(dialect: Dialect, request: web.Request) -> web.StreamResponse:
    """Run the pipeline of the module docstring for one request to ``dialect``."""
    try:
        control = parse_control(request.headers)
    except ControlError as exc:
        return dialect.error_response(RequestError(400, "invalid_request", str(exc)), Control())
    try:
        if control.status is not None and control.status >= 300:
            raise RequestError(control.status, "forced", "")
        try:
            payload = json.loads(await request.read())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RequestError(400, "invalid_json", "body is not valid JSON") from None
        if not isinstance(payload, dict):
            raise RequestError(400, "invalid_json", "body is not a JSON object")
        turn = dialect.read(payload, request)
        served = resolve_model(dialect.provider, turn.model)
        if served is None:
            raise RequestError(404, "model_not_found", f"unknown model {turn.model!r}", model=turn.model)
    except RequestError as err:
        return dialect.error_response(err, control)
    return await dialect.respond(request, decide(turn, served, control))


# --- HTTP writing ---------------------------------------------------------------------------------


def _merge_headers(base: Mapping[str, str], control: Control, content_type: str) -> CIMultiDict[str]:
    headers = CIMultiDict(base)
    headers["Content-Type"] = content_type
    for name, value in control.extra_headers:
        headers.add(name, value)
    if control.gzip:
        headers["Content-Encoding"] = "gzip"
    return headers


def json_response(body: Mapping[str, Any] | list[Any], status: int, headers: Mapping[str, str], control: Control,
                  *, indent: int | None = None, content_type: str = "application/json") -> web.Response:
    """A complete JSON response (gzip-compressed when ``x-emulator-gzip`` asked for it)."""
    separators = None if indent is not None else (",", ":")
    raw = json.dumps(body, ensure_ascii=False, indent=indent, separators=separators).encode("utf-8")
    if control.gzip:
        comp = zlib.compressobj(wbits=31)
        raw = comp.compress(raw) + comp.flush()
    return web.Response(body=raw, status=status, headers=_merge_headers(headers, control, content_type))


def compact(obj: Any) -> str:
    """JSON without spaces, as OpenAI and Anthropic write SSE data lines."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class EventStream:
    """An open SSE response: :meth:`send` writes one event (pre-framed bytes), honouring the
    ``x-emulator-chunk-delay-ms`` delay between events and ``x-emulator-gzip`` (sync-flushed per event)."""

    def __init__(self, resp: web.StreamResponse, control: Control):
        self._resp, self._control = resp, control
        self._gzip = zlib.compressobj(wbits=31) if control.gzip else None
        self._sent = 0

    @classmethod
    async def open(cls, request: web.Request, headers: Mapping[str, str], control: Control,
                   content_type: str) -> EventStream:
        resp = web.StreamResponse(status=200, headers=_merge_headers(headers, control, content_type))
        await resp.prepare(request)
        return cls(resp, control)

    async def send(self, event: bytes) -> None:
        if self._sent and self._control.chunk_delay_ms:
            await asyncio.sleep(self._control.chunk_delay_ms / 1000)
        self._sent += 1
        if self._gzip is not None:
            event = self._gzip.compress(event) + self._gzip.flush(zlib.Z_SYNC_FLUSH)
        await self._resp.write(event)

    async def close(self) -> web.StreamResponse:
        if self._gzip is not None:
            await self._resp.write(self._gzip.flush())
        await self._resp.write_eof()
        return self._resp


def split_deltas(text: str) -> list[str]:
    """Split a reply into streamed pieces: words with their leading whitespace (``"Hi", " there"``)."""
    pieces: list[str] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        while i < n and not text[i].isspace():
            i += 1
        pieces.append(text[start:i])
        start = i
    return pieces or [""]


def split_fixed(text: str, size: int = 8) -> list[str]:
    """Split ``text`` (e.g. tool-call JSON arguments) into pieces of ``size`` characters."""
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]
