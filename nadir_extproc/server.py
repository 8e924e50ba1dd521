"""The grpc.aio ExternalProcessor servicer: the bidi ``Process`` stream loop, health, shutdown.

Thin by design: one gRPC stream = one HTTP request = one ``RequestProcessor``, dropped when the
stream ends however it ends (``finally``). All request logic lives in ``processor``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections import OrderedDict
from dataclasses import dataclass, field
from collections.abc import Callable, AsyncIterator

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from nadir_extproc import ledger
from nadir_extproc.budgets import Budgets
from nadir_extproc.config import Settings
from nadir_extproc.listeners import BindError, Listeners, interceptors
from nadir_extproc.pb import external_processor_pb2_grpc as ep_grpc
from nadir_extproc.pricing import catalogue
from nadir_extproc.pricing.pricefile import load_price_file
from nadir_extproc.processor import RequestProcessor
from nadir_extproc.record import Outcome
from nadir_extproc.routing.base import Router
from nadir_extproc.routing.policy import TierPolicy
from nadir_extproc.stats import count
from nadir_extproc.tags import KeyIdentity
from nadir_extproc.protocol import ProcessingRequest, ProcessingResponse
from nadir_extproc.routing.onnx_router import load_router
from nadir_extproc.tags import identity_from_settings
from nadir_extproc.telemetry.context import carrier_from_metadata
from nadir_extproc.telemetry.providers import Telemetry, setup_telemetry

log = logging.getLogger("nadir_extproc")

@dataclass
class Context:
    """What every request processor shares (built once at start-up)."""

    settings: Settings
    router: Router
    policy: TierPolicy
    #: Key ids (HMAC of the API key) and budget rules; ``None`` = off (``nadir_extproc.tags``,
    #: ``nadir_extproc.budgets``).
    identity: KeyIdentity | None = None
    budgets: Budgets | None = None
    #: Called once per finished request with its ``Outcome`` (telemetry/ledger hook; off path).
    #: Use ``add_on_complete`` to chain several sinks.
    on_complete: Callable[[Outcome], None] | None = None
    #: Response ids already priced (background Responses fetched by ``GET /v1/responses/{id}``):
    #: a response is priced once, however often it is polled.
    priced_responses: OnceSet = field(default_factory=lambda: OnceSet(100_000))

    def complete(self, out: Outcome) -> None:
        """Hand one finished request's record to the sinks (``on_complete``); a sink raising is
        counted (``on_complete_error``), never raised."""
        cb = self.on_complete
        if cb is not None:
            try:
                cb(out)
            except Exception as e:  # noqa: BLE001
                count("on_complete_error", f"{type(e).__name__}: {e}")

    def add_on_complete(self, sink: Callable[[Outcome], None]) -> None:
        """Add a sink to ``on_complete`` (kept as a plain callable while there is only one)."""
        cur = self.on_complete
        if cur is None:
            self.on_complete = sink
        elif isinstance(cur, FanOut):
            cur.sinks.append(sink)
        else:
            self.on_complete = FanOut([cur, sink])


class OnceSet:
    """A bounded set of keys seen once (oldest forgotten first): ``first(key)`` is True the first
    time a key is offered, False after. Thread-unsafe by design: one asyncio loop owns it."""

    __slots__ = ("_keys", "_max")

    def __init__(self, max_keys: int) -> None:
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._max = max_keys

    def add(self, key: str) -> None:
        self.first(key)

    def first_pricing(self, response_id: object, retrieval: bool) -> bool:
        """Whether a response id is priced now: False only for a retrieval (``GET``) of an id
        priced before (a background response polled again, a stored response fetched after its
        request: billed once). A ``POST``'s id is remembered and always priced; a response
        without an id is always priced."""
        if not isinstance(response_id, str) or not response_id:
            return True
        if retrieval:
            return self.first(response_id)
        self.add(response_id)
        return True

    def first(self, key: str) -> bool:
        if key in self._keys:
            self._keys.move_to_end(key)
            return False
        self._keys[key] = None
        if len(self._keys) > self._max:
            self._keys.popitem(last=False)
        return True


class FanOut:
    """Calls every sink with the outcome; one sink raising does not stop the others (counted as
    ``on_complete_error``)."""

    __slots__ = ("sinks",)

    def __init__(self, sinks: list[Callable[[Outcome], None]]) -> None:
        self.sinks = sinks

    def __call__(self, out: Outcome) -> None:
        for sink in self.sinks:
            try:
                sink(out)
            except Exception as e:  # noqa: BLE001
                count("on_complete_error", f"{getattr(sink, '__qualname__', sink)}: {type(e).__name__}: {e}")


#: Name under which grpc.health.v1 reports this service (the empty name reports the server).
SERVICE_NAME = "envoy.service.ext_proc.v3.ExternalProcessor"


class ExternalProcessor(ep_grpc.ExternalProcessorServicer):
    """``envoy.service.ext_proc.v3.ExternalProcessor`` over ``RequestProcessor``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def Process(
        self, request_iterator: AsyncIterator[ProcessingRequest], context: grpc.aio.ServicerContext
    ) -> None:
        proc = RequestProcessor(self.ctx)
        # Envoy sends the trace context of its ext_proc span in the stream's gRPC metadata.
        proc.out.trace_carrier = carrier_from_metadata(context.invocation_metadata())
        # context.read()/write() instead of an async generator over request_iterator: the same
        # stream, less CPU per message in grpc.aio (bench/results: no-op A/B).
        read, write, eof = context.read, context.write, grpc.aio.EOF
        try:
            while True:
                req = await read()
                if req is eof:
                    break
                await write(await proc.handle_async(req))
        finally:
            proc.finish()


def build_context(settings: Settings, telemetry: Telemetry | None = None) -> Context:
    """The shared request context from settings: tier policy and the router (ONNX, else rules); with
    ``telemetry``, its ``record`` is added as an ``on_complete`` sink (span + metrics per request).

    Also loads the price catalogue now (~0.3 s) so the first request does not pay for it."""
    catalogue.load()
    if settings.price_file:
        # Operator prices over the catalogue; a bad entry raises PriceFileError naming it.
        # versioned: x-nadir-price-source names the file's content (which version is in force)
        catalogue.use_price_file(load_price_file(settings.price_file, versioned=True))
    policy = settings.policy()
    # The ONNX router when its model loads, else the rule router (counted, logged once).
    router = load_router(policy, settings.router_model, settings.router)
    ctx = Context(settings=settings, router=router, policy=policy)
    # Key ids (creates the key-id secret, mode 0600, on first start) and budget rules.
    ctx.identity = identity_from_settings(settings)
    ctx.budgets = (
        Budgets(settings.budgets, reservations=settings.budget_reservations, redis=settings.budget_redis)
        if settings.budgets else None
    )
    if telemetry is not None:
        ctx.add_on_complete(telemetry.record)
    return ctx


class Service:
    """A running ext_proc server: gRPC on TCP (and optionally a Unix socket) with health, plus a
    health-only server on ``health_listen``; who may connect where: ``nadir_extproc.listeners``.

    ``await start()`` binds and returns the bound TCP port (``listen`` may use port 0);
    ``await stop(grace_s)`` marks health NOT_SERVING, stops accepting and lets open streams finish
    within ``grace_s`` seconds. Raises ``ListenerError`` for listener settings that would expose
    ``ExternalProcessor`` to untrusted clients.
    """

    def __init__(self, settings: Settings, ctx: Context | None = None, telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        #: OTel export (``settings.telemetry``), set up here unless a ``ctx`` is given; a given
        #: ``telemetry`` (already wired into ``ctx``) is shut down by ``stop()`` too.
        self.telemetry = telemetry if telemetry is not None or ctx is not None else setup_telemetry(settings.telemetry)
        self.ctx = ctx or build_context(settings, self.telemetry)
        #: The ledger writer (``settings.ledger``; an on_complete sink), opened here unless a
        #: ``ctx`` is given; ``stop()`` flushes it.
        self.ledger = ledger.attach(settings, self.ctx) if ctx is None else None
        self.port: int | None = None
        self.health_port: int | None = None
        self.health = health.aio.HealthServicer()
        opts = [
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            # Off, so a second server on a taken port fails loudly; on for `serve --workers N`,
            # whose workers share one port (nadir_extproc.workers sets NADIR_REUSEPORT=1).
            ("grpc.so_reuseport", 1 if os.environ.get("NADIR_REUSEPORT") == "1" else 0),
        ]
        # The health-only port is shared by `serve --workers` like the main one.
        self.listeners = Listeners(settings, self.health, options=[o for o in opts if o[0] == "grpc.so_reuseport"])
        self.server = grpc.aio.server(options=opts, interceptors=interceptors(settings))
        ep_grpc.add_ExternalProcessorServicer_to_server(ExternalProcessor(self.ctx), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)

    async def start(self) -> int | None:
        """Bind and start serving; returns the TCP port (None with ``uds`` only). Raises
        ``BindError`` (a ``RuntimeError``) if binding fails."""
        self.port = self.listeners.bind(self.server)
        await self.server.start()
        if self.ctx.budgets:  # Redis: connect and seed a cold store (bounded; falls back to local totals)
            await self.ctx.budgets.start()
        try:
            self.health_port = await self.listeners.start_health()
        except BindError:
            await self.server.stop(None)  # else its __del__ runs after the loop closed: a traceback
            raise
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("nadir-extproc serving: %s", self.listeners.describe())
        if self.telemetry is not None:
            log.info("telemetry: %s", self.telemetry.describe())
        return self.port

    async def stop(self, grace_s: float | None = None) -> None:
        """Graceful stop (see class docstring)."""
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(self.settings.grace_period_s if grace_s is None else grace_s)
        if self.ctx.budgets:  # settlements still on their way to Redis
            await self.ctx.budgets.aclose()
        await self.listeners.stop_health(0)
        if self.ledger is not None:  # every finished stream has queued its row by now
            if not await asyncio.to_thread(self.ledger.close, self.settings.ledger.close_timeout_s):
                log.error("ledger: rows still queued after %.1fs; not all were written", self.settings.ledger.close_timeout_s)
        if self.telemetry is not None:
            await asyncio.to_thread(self.telemetry.shutdown)


#: Allocations between two young-generation collections once serving (CPython's default: 700).
GC_GEN0_THRESHOLD = 7000


def quiet_gc() -> None:
    """Tune the cyclic garbage collector for serving (called once, after start-up).

    The objects built at start-up (price catalogue, router session and tokenizer, OTel SDK, gRPC)
    live as long as the process: ``gc.freeze()`` moves them out of the collector's generations so
    its older-generation passes stop re-walking ~80 k objects. Request garbage is freed by
    reference counting; what the collector is for here is the rare cycle, so the young generation
    is collected every ``GC_GEN0_THRESHOLD`` allocations instead of 700. Measured on the request
    path (``bench/results/levers-*.md``): collector time 18-22 -> 1-2 us per request."""
    gc.collect()
    gc.freeze()
    _, g1, g2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, g1, g2)


async def serve(settings: Settings, ready: asyncio.Event | None = None, config_path: str | None = None) -> None:
    """Run the service until SIGTERM/SIGINT, then stop gracefully (``settings.grace_period_s``).
    The settings file ``config_path``, the price file and the router policy are reloaded when they
    change or on SIGHUP (``nadir_extproc.reload``)."""
    from nadir_extproc.reload import Reloader

    svc = Service(settings)
    try:
        await svc.start()
    except BindError:
        await svc.stop(0)  # the ledger writer and telemetry exporters too: else the process waits on them, never exits
        raise
    quiet_gc()
    stop = asyncio.Event()
    hup = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, hup.set)
    reloader = asyncio.create_task(Reloader(svc.ctx, config_path).run(hup))
    if ready is not None:
        ready.set()
    where = f"{settings.listen.rsplit(':', 1)[0]}:{svc.port}" if settings.listen else f"unix:{settings.uds}"
    print(f"nadir-extproc listening on {where}", flush=True)
    await stop.wait()
    log.info("signal received: stopping (grace %.1fs)", settings.grace_period_s)
    reloader.cancel()
    await svc.stop()
