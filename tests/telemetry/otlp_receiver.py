"""A real OTLP gRPC receiver for tests: the collector's Trace and Metrics services from
``opentelemetry-proto``'s service definitions, on 127.0.0.1, keeping every request it gets.

``raw`` holds every received export request serialised back to bytes (unknown fields included),
so a test can search *all* exported bytes; ``spans()`` flattens the trace requests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as msvc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as msvc_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tsvc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as tsvc_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def any_value(v: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as a Python value (arrays as lists)."""
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


@dataclass
class ReceivedSpan:
    service: str
    span: Span

    @property
    def attrs(self) -> dict[str, Any]:
        return {kv.key: any_value(kv.value) for kv in self.span.attributes}

    @property
    def trace_id(self) -> str:
        return self.span.trace_id.hex()

    @property
    def span_id(self) -> str:
        return self.span.span_id.hex()

    @property
    def parent_span_id(self) -> str:
        return self.span.parent_span_id.hex()


class OTLPReceiver(tsvc_grpc.TraceServiceServicer, msvc_grpc.MetricsServiceServicer):
    """Start with ``start()`` (returns the port), stop with ``stop()``."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self.trace_requests: list[tsvc.ExportTraceServiceRequest] = []
        self.metric_requests: list[msvc.ExportMetricsServiceRequest] = []
        self.raw: list[bytes] = []
        self.server: grpc.Server | None = None
        self.port = 0
        #: Cleared by ``hold()``: exports then wait (as a stuck collector would) until ``release()``.
        self._open = threading.Event()
        self._open.set()
        #: Set when an export arrives while held.
        self.held_export = threading.Event()

    # -- services
    def Export(self, request, context):  # noqa: N802 — both services name their method Export
        if not self._open.is_set():
            self.held_export.set()
            self._open.wait(30)
        with self._cv:
            self.raw.append(request.SerializeToString())
            if isinstance(request, tsvc.ExportTraceServiceRequest):
                self.trace_requests.append(request)
                reply: Any = tsvc.ExportTraceServiceResponse()
            else:
                self.metric_requests.append(request)
                reply = msvc.ExportMetricsServiceResponse()
            self._cv.notify_all()
        return reply

    # -- lifecycle
    def start(self) -> int:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        tsvc_grpc.add_TraceServiceServicer_to_server(self, self.server)
        msvc_grpc.add_MetricsServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        return self.port

    def __enter__(self) -> "OTLPReceiver":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def hold(self) -> None:
        self.held_export.clear()
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def stop(self) -> None:
        self.release()
        if self.server is not None:
            self.server.stop(0).wait(5)
            self.server = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- reading
    def spans(self) -> list[ReceivedSpan]:
        with self._cv:
            reqs = list(self.trace_requests)
        out = []
        for req in reqs:
            for rs in req.resource_spans:
                svc = next((any_value(kv.value) for kv in rs.resource.attributes if kv.key == "service.name"), "")
                for ss in rs.scope_spans:
                    out.extend(ReceivedSpan(svc, s) for s in ss.spans)
        return out

    def metric_names(self) -> set[str]:
        with self._cv:
            reqs = list(self.metric_requests)
        return {m.name for r in reqs for rm in r.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}

    def all_bytes(self) -> bytes:
        with self._cv:
            return b"".join(self.raw)

    def our_span(self, pred: Callable[[ReceivedSpan], bool], timeout_s: float = 20.0) -> ReceivedSpan:
        """The first span of nadir-extproc (service ``nadir-extproc``) for which ``pred`` holds;
        waits for it (``AssertionError`` on timeout)."""
        return self.wait_for(lambda: next((s for s in self.spans() if s.service == "nadir-extproc" and pred(s)), None), timeout_s)

    def wait_for(self, pred: Callable[[], Any], timeout_s: float = 20.0) -> Any:
        """Wait until ``pred()`` is truthy (re-checked on every export and every 0.2 s); returns
        its value. Raises ``AssertionError`` on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while True:
                self._cv.release()
                try:
                    v = pred()
                finally:
                    self._cv.acquire()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"OTLP receiver: condition not met in {timeout_s}s")
                self._cv.wait(min(left, 0.2))
