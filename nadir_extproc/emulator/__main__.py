"""``python -m nadir_extproc.emulator --host 127.0.0.1 --port N``: run the emulator as a process.

Prints ``emulator listening on http://HOST:PORT`` (the real port when ``--port 0``) once it accepts
connections, and exits with status 0 on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import signal
import sys

from .app import start_emulator


async def _main(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    handle = await start_emulator(host, port)
    print(f"emulator listening on {handle.base_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await handle.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nadir_extproc.emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port (printed on the ready line)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_main(args.host, args.port))
    except OSError as e:  # a busy port or a host that is not this machine's: one line, exit 1
        why = "the port is in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
        print(f"error: cannot listen on {args.host}:{args.port}: {why} (pick another --port, or 0 for any free one)",
              file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
