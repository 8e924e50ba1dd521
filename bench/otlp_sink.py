"""An OTLP gRPC sink for the benchmark: accepts trace and metric exports, counts them, keeps
nothing. Both Envoys' tracers and nadir-extproc export here, so export costs what it costs with a
real collector (minus the collector's own work, which runs in this separate process).

    python bench/otlp_sink.py --port PORT           # prints "otlp sink listening on PORT"
"""

from __future__ import annotations

import argparse
import time
from concurrent import futures

import grpc

METHODS = (
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
)


class Sink(grpc.GenericRpcHandler):
    def __init__(self) -> None:
        self.bytes = 0
        self._h = grpc.unary_unary_rpc_method_handler(self._export, request_deserializer=None, response_serializer=None)

    def _export(self, request: bytes, context) -> bytes:
        self.bytes += len(request)
        return b""  # an empty Export*ServiceResponse

    def service(self, handler_call_details):
        return self._h if handler_call_details.method in METHODS else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.max_receive_message_length", 64 << 20)])
    server.add_generic_rpc_handlers((Sink(),))
    port = server.add_insecure_port(f"127.0.0.1:{a.port}")
    server.start()
    print(f"otlp sink listening on {port}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
