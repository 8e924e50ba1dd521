"""The emulator's aiohttp application: routes, request recording, and the in-process entry point."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .anthropic_messages import AnthropicMessages
from .common import STARTED, Dialect, serve
from .gemini import Gemini
from .openai_chat import OpenAIChat
from .openai_responses import OpenAIResponses

CONTROL_PREFIX = "/__emulator/"
MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the emulator received it.

    ``headers`` are (name, value) pairs in arrival order, duplicates kept; ``body`` is the raw bytes;
    ``query`` is the raw query string (no leading ``?``).
    """

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def to_json(self) -> dict[str, Any]:
        """JSON form served by ``GET /__emulator/requests``: ``body_base64`` always, ``body_text``
        when the body is valid UTF-8 (else null), ``headers`` as ``[name, value]`` pairs."""
        try:
            text: str | None = self.body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return {"method": self.method, "path": self.path, "query": self.query,
                "headers": [list(h) for h in self.headers],
                "body_base64": base64.b64encode(self.body).decode("ascii"), "body_text": text}


@dataclass
class Replay:
    """A canned response for the next provider request: exact bytes, sent in the given chunks.

    Queued with ``POST /__emulator/replay`` and JSON ``{"status": 200, "headers": {name: value},
    "chunks_base64": [...], "delay_ms": 5}``; used by tests that replay recorded provider bytes
    (e.g. ``.sse`` files) re-chunked at chosen boundaries. ``delay_ms`` sleeps between chunks so
    they tend to reach the client (or Envoy) as separate reads.
    """

    status: int
    headers: dict[str, str]
    chunks: list[bytes]
    delay_ms: int = 0


@dataclass
class Recorder:
    """Every provider request received, in order (control endpoints excluded), and queued replays."""

    requests: list[RecordedRequest] = field(default_factory=list)
    replays: list[Replay] = field(default_factory=list)


_RECORDER = web.AppKey("recorder", Recorder)


@web.middleware
async def _record(request: web.Request, handler: Any) -> web.StreamResponse:
    request[STARTED] = time.monotonic()
    if not request.path.startswith(CONTROL_PREFIX):
        body = await request.read()
        rec = request.app[_RECORDER]
        rec.requests.append(RecordedRequest(
            request.method, request.path, request.query_string, list(request.headers.items()), body))
        if rec.replays:
            return await _serve_replay(request, rec.replays.pop(0))
    return await handler(request)


async def _serve_replay(request: web.Request, replay: Replay) -> web.StreamResponse:
    resp = web.StreamResponse(status=replay.status, headers=replay.headers)
    await resp.prepare(request)
    for i, chunk in enumerate(replay.chunks):
        if i and replay.delay_ms:
            await asyncio.sleep(replay.delay_ms / 1000)
        await resp.write(chunk)
    await resp.write_eof()
    return resp


async def _queue_replay(request: web.Request) -> web.Response:
    try:
        spec = await request.json()
        replay = Replay(
            status=int(spec.get("status", 200)),
            headers={str(k): str(v) for k, v in (spec.get("headers") or {}).items()},
            chunks=[base64.b64decode(c) for c in spec["chunks_base64"]],
            delay_ms=int(spec.get("delay_ms", 0)),
        )
    except (ValueError, KeyError, TypeError) as e:
        return web.json_response({"error": f"bad replay spec: {e}"}, status=400)
    request.app[_RECORDER].replays.append(replay)
    return web.Response(status=204)


def _route(dialect: Dialect) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await serve(dialect, request)
    return handler


async def _list_requests(request: web.Request) -> web.Response:
    return web.json_response([r.to_json() for r in request.app[_RECORDER].requests])


async def _clear_requests(request: web.Request) -> web.Response:
    request.app[_RECORDER].requests.clear()
    return web.Response(status=204)


def build_app() -> web.Application:
    """The emulator application (a fresh, empty recorder each call)."""
    app = web.Application(middlewares=[_record], client_max_size=MAX_BODY_BYTES)
    app[_RECORDER] = Recorder()
    gemini = _route(Gemini())
    app.add_routes([
        web.post("/v1/chat/completions", _route(OpenAIChat())),
        web.post("/openai/v1/chat/completions", _route(OpenAIChat())),  # Groq's path
        web.post("/v1/responses", _route(OpenAIResponses())),
        web.post("/v1/messages", _route(AnthropicMessages())),
        web.post("/v1beta/models/{model:[^/:]+}:{method:[A-Za-z]+}", gemini),
        web.post("/v1/models/{model:[^/:]+}:{method:[A-Za-z]+}", gemini),
        web.get(CONTROL_PREFIX + "requests", _list_requests),
        web.delete(CONTROL_PREFIX + "requests", _clear_requests),
        web.post(CONTROL_PREFIX + "replay", _queue_replay),
    ])
    return app


@dataclass
class EmulatorHandle:
    """A running emulator: where it listens, what it received, and how to stop it."""

    host: str
    port: int
    _runner: web.AppRunner
    _recorder: Recorder

    @property
    def base_url(self) -> str:
        """``http://<host>:<port>`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received so far, oldest first."""
        return list(self._recorder.requests)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self._recorder.requests.clear()

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        await self._runner.cleanup()


async def start_emulator(host: str = "127.0.0.1", port: int = 0) -> EmulatorHandle:
    """Start the emulator on ``host:port`` in the running event loop (port 0 = any free port).

    Returns once it accepts connections; ``handle.port`` is the real port.
    """
    app = build_app()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    return EmulatorHandle(host, bound, runner, app[_RECORDER])
