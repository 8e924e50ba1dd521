"""A no-op ext_proc for the benchmark floor: answers every ProcessingRequest with an empty
CONTINUE for its phase, nothing else. Same stack as the product (grpc.aio, uvloop when installed,
our generated stubs), so the difference to the product is our own work.

    python bench/noop_extproc.py --port PORT        # prints "noop listening on PORT"
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nadir_extproc.pb import external_processor_pb2 as ep  # noqa: E402
from nadir_extproc.pb import external_processor_pb2_grpc as ep_grpc  # noqa: E402

_REPLIES = {}
for _phase in ("request_headers", "request_body", "response_headers", "response_body"):
    _r = ep.ProcessingResponse()
    getattr(_r, _phase).response.SetInParent()
    _REPLIES[_phase] = _r
for _phase in ("request_trailers", "response_trailers"):
    _r = ep.ProcessingResponse()
    getattr(_r, _phase).SetInParent()
    _REPLIES[_phase] = _r


class Noop(ep_grpc.ExternalProcessorServicer):
    async def Process(self, request_iterator, context):
        async for req in request_iterator:
            yield _REPLIES[req.WhichOneof("request")]


class NoopReadWrite(ep_grpc.ExternalProcessorServicer):
    """The same with ``context.read()`` / ``context.write()`` instead of an async generator."""

    async def Process(self, request_iterator, context):
        read, write, eof = context.read, context.write, grpc.aio.EOF
        while True:
            req = await read()
            if req is eof:
                return
            await write(_REPLIES[req.WhichOneof("request")])


async def main(port: int, rw: bool = False) -> None:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 16 << 20), ("grpc.max_send_message_length", 16 << 20)])
    ep_grpc.add_ExternalProcessorServicer_to_server(NoopReadWrite() if rw else Noop(), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"noop listening on {bound}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--read-write", action="store_true", help="context.read()/write() instead of an async generator")
    a = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(a.port, a.read_write))
