"""What shadow routing adds per explicit-model request, in process (not a test: numbers depend on
the machine).

    .venv/bin/python bench/shadow/bench_shadow.py [--n 3000] [--out bench/shadow/results.md]

One whole request through ``RequestProcessor`` (request headers, request body, response headers,
JSON response body, ``finish``) with ``model: gpt-4o`` and the shipped ONNX router, with shadow
routing on (``sample_rate`` 1) and off, interleaved in blocks of 100 so drift hits both alike; and
the two pieces shadow scoring adds, timed alone: the router call (``OnnxRouter.route``, the same
call the ``auto`` path makes) and the what-if pricing (``pricing.cost.price`` of the same usage on
the shadow model, done once at completion). The process is pinned to one CPU; 300 warm-up
requests; ``time.perf_counter_ns`` around each request. Prompts: a short chat question (31
characters) and a 1,200-character one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from decimal import Decimal
from pathlib import Path

from nadir_extproc.config import Settings
from nadir_extproc.pb import base_pb2, external_processor_pb2 as ep
from nadir_extproc.pricing.cost import price
from nadir_extproc.pricing.usage import Usage
from nadir_extproc.processor import RequestProcessor
from nadir_extproc.routing.base import RouteRequest
from nadir_extproc.routing.onnx_router import load_router
from nadir_extproc.server import Context

SHORT = "What is the capital of France?"
LONG = ("Our quarterly cloud bill rose faster than revenue. Summarise the three biggest drivers and what to do next. " * 12)[:1200]
RESPONSE = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500},
}).encode()


def _h(field: str, hdrs: dict[str, str], eos: bool = False) -> ep.ProcessingRequest:
    hm = base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in hdrs.items()])
    return ep.ProcessingRequest(**{field: ep.HttpHeaders(headers=hm, end_of_stream=eos)})


def _b(field: str, data: bytes) -> ep.ProcessingRequest:
    return ep.ProcessingRequest(**{field: ep.HttpBody(body=data, end_of_stream=True)})


def contexts():
    on, off = Settings(ledger={"enabled": False}), Settings(ledger={"enabled": False}, shadow_routing={"sample_rate": 0})
    pol = on.policy()
    router = load_router(pol, None, "onnx")
    assert type(router).__name__ == "OnnxRouter", router
    return router, Context(settings=on, router=router, policy=pol), Context(settings=off, router=router, policy=pol)


def one_request(ctx: Context, msgs: list) -> int:
    req = [_h("request_headers", {":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json"}),
           _b("request_body", json.dumps({"model": "gpt-4o", "messages": msgs}).encode()),
           _h("response_headers", {":status": "200", "content-type": "application/json"}),
           _b("response_body", RESPONSE)]
    t = time.perf_counter_ns()
    p = RequestProcessor(ctx)
    for r in req:
        p.handle(r)
    p.finish()
    return time.perf_counter_ns() - t


def q(xs: list[int], p: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] / 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("results.md"))
    a = ap.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    router, on, off = contexts()
    rows = []
    for name, text in (("short (31 chars)", SHORT), ("long (1,200 chars)", LONG)):
        msgs = [{"role": "user", "content": text}]
        for _ in range(300):
            one_request(on, msgs), one_request(off, msgs)
        t_on: list[int] = []
        t_off: list[int] = []
        for _ in range(a.n // 100):
            t_on += [one_request(on, msgs) for _ in range(100)]
            t_off += [one_request(off, msgs) for _ in range(100)]
        rr = RouteRequest(provider="openai", dialect="openai_chat", prompt=text, message_count=1, body={"model": "gpt-4o", "messages": msgs})
        t_route = []
        for _ in range(a.n):
            t = time.perf_counter_ns()
            router.route(rr)
            t_route.append(time.perf_counter_ns() - t)
        u = Usage(uncached_input_tokens=1000, output_tokens=500)
        t_price = []
        for _ in range(a.n):
            t = time.perf_counter_ns()
            price("openai", "gpt-4o-mini", u)
            t_price.append(time.perf_counter_ns() - t)
        assert price("openai", "gpt-4o-mini", u).total_usd == Decimal("0.00045")
        rows.append((name, statistics.median(t_off) / 1000, statistics.median(t_on) / 1000, q(t_on, 0.99), q(t_off, 0.99),
                     statistics.median(t_route) / 1000, q(t_route, 0.99), statistics.median(t_price) / 1000))
    lines = [
        "# What shadow routing adds per explicit-model request (in process)",
        "",
        f"Command: `.venv/bin/python bench/shadow/bench_shadow.py --n {a.n}` — {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, one CPU (sched_setaffinity), shared 2-core machine with other work running "
        f"(load average {os.getloadavg()[0]:.1f} at the end: medians are noisy, p99 is the neighbours); "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "Whole request = request headers + body, response headers + JSON body, finish (model `gpt-4o`, ONNX router, ledger off); "
        "shadow on (sample_rate 1) vs off (sample_rate 0), interleaved. Router = `OnnxRouter.route` alone (the call the auto path "
        "makes); what-if price = `price()` of the same usage on the shadow model, done once at completion.",
        "",
        "| prompt | request, shadow off: median µs | shadow on: median µs | added: median µs | p99 off / on µs | router call: median / p99 µs | what-if price: median µs |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, off_m, on_m, on99, off99, rm, r99, pm in rows:
        lines.append(f"| {name} | {off_m:.1f} | {on_m:.1f} | {on_m - off_m:.1f} | {off99:.0f} / {on99:.0f} | {rm:.1f} / {r99:.0f} | {pm:.1f} |")
    lines += ["", "Shadow scoring adds one router call per sampled explicit-model request (the same call, and cost, as routing an "
              "`auto` request) and one catalogue pricing at completion; `shadow_routing.sample_rate` scales the first "
              "linearly (0 = no router call at all). The added time inside a whole request is larger than the router call "
              "timed alone in a tight loop; on this loaded machine we did not separate why (cache effects, or the neighbours' load)."]
    a.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
