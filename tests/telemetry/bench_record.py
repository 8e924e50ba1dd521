"""How long ``Telemetry.record`` (span + metrics of one finished request) takes on the caller's
thread — the event loop in the server. Not a test (no timing assertions anywhere); run it by hand:

    .venv/bin/python -m tests.telemetry.bench_record [N]

Set-up as in production except the destinations: the real batch span processor with an exporter
that accepts every batch (no network), and a metric reader that is never collected during the
run. Prints µs per call (best of 5 runs of N calls each) — CPU time of the calling thread (what
the event loop pays; other processes on the machine do not inflate it) and wall time — for a routed chat call with usage, cost,
tags and a parent traceparent, and for an unpriced provider error.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from nadir_extproc.config import TelemetrySettings
from nadir_extproc.record import Outcome
from nadir_extproc.telemetry.providers import Telemetry
from tests.telemetry.test_span_attributes import chat_outcome


class _Accept(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def _outcomes() -> dict[str, Outcome]:
    chat = chat_outcome()
    chat.tags = {"user": "alice", "team": "search", "feature": "faq", "env": "prod"}
    chat.key_id = "3f2a9c0d11e5b6a7"
    chat.request_id = "req-1"
    chat.trace_carrier = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    err = Outcome(dialect="openai_chat", provider="openai", requested_model="auto", routed_model="gpt-4o-mini",
                  status=429, unpriced_reason="provider_error", latency_ms=0.4)
    err.end_ns = err.start_ns + 5_000_000
    return {"routed chat, priced, tagged, traceparent": chat, "provider error 429, unpriced": err}


def main(n: int = 20000) -> None:
    tel = Telemetry(TelemetrySettings(max_queue_size=1_000_000), span_exporter=_Accept(), metric_readers=[InMemoryMetricReader()])
    try:
        for label, out in _outcomes().items():
            for _ in range(500):  # warm up (attribute sets and instruments exist afterwards)
                tel.record(out)
            wall = cpu = float("inf")
            for _ in range(5):
                t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
                for _ in range(n):
                    tel.record(out)
                cpu = min(cpu, (time.thread_time_ns() - c0) / n / 1000)
                wall = min(wall, (time.perf_counter_ns() - t0) / n / 1000)
            print(f"Telemetry.record  {label:42s} {cpu:7.1f} µs CPU of the calling thread, {wall:7.1f} µs wall (best of 5 x {n})")
    finally:
        tel.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000)
