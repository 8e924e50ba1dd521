"""The ``nadir-extproc`` command: ``serve`` (the ext_proc service) and ``demo`` (the local stack)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Envoy ext_proc that routes model=\"auto\" LLM calls and prices every request.")


@app.command()
def serve(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML settings file (else $NADIR_CONFIG)."),
    listen: Optional[str] = typer.Option(None, help="host:port to listen on (else $NADIR_LISTEN, default 127.0.0.1:50051)."),
    uds: Optional[str] = typer.Option(None, help="Also listen on this Unix socket path (else $NADIR_UDS)."),
    workers: int = typer.Option(1, min=1, max=64, envvar="NADIR_WORKERS",
                                help="Worker processes sharing the port (SO_REUSEPORT); one per core (else $NADIR_WORKERS)."),
) -> None:
    """Run the ext_proc gRPC service until SIGTERM (graceful stop)."""
    from nadir_extproc.config import ConfigError, load_settings
    from nadir_extproc.server import serve as run

    try:
        settings = load_settings(config)
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    updates = {k: v for k, v in (("listen", listen), ("uds", uds)) if v}
    if updates:
        settings = settings.model_copy(update=updates)
        from nadir_extproc.listeners import ListenerError, check_trust

        try:
            check_trust(settings)  # --listen must not open ExternalProcessor to the network either
        except ListenerError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
    from nadir_extproc.config import check_models

    try:
        check_models(settings)  # the price file, and every model the settings name, fail fast
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if workers > 1:
        if settings.uds:
            typer.echo("error: --workers cannot share a Unix socket (uds); use TCP", err=True)
            raise typer.Exit(2)
        from nadir_extproc.workers import Supervisor

        args = [a for a in (["--config", str(config)] if config else [])]
        raise typer.Exit(Supervisor(settings, workers, args).run())
    index = int(os.environ.get("NADIR_WORKER_INDEX", "0"))
    if index and settings.telemetry.prometheus_port:
        # One /metrics endpoint per worker process: worker i serves prometheus_port + i.
        tel = settings.telemetry.model_copy(update={"prometheus_port": settings.telemetry.prometheus_port + index})
        settings = settings.model_copy(update={"telemetry": tel})
    try:
        import uvloop  # optional: faster event loop when installed

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run(settings))


#: Exit status of ``nadir-extproc check``: the settings are valid / invalid (message on stderr).
CHECK_OK, CHECK_INVALID = 0, 2


@app.command()
def check(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML settings file to check (else $NADIR_CONFIG)."),
) -> None:
    """Validate a settings file without serving: every key, the listeners, the price file, the
    router policy, and every model in tiers / default_models / baseline_models. Exit 0 valid, 2 invalid."""
    from nadir_extproc.config import ConfigError, check_models, load_settings

    if config is not None and not config.is_file():
        typer.echo(f"error: no settings file at {config} (start from settings.example.yaml)", err=True)
        raise typer.Exit(CHECK_INVALID)
    try:
        settings = load_settings(config)
        check_models(settings)
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(CHECK_INVALID) from None
    where = config or os.environ.get("NADIR_CONFIG") or "defaults (no file)"
    typer.echo(f"ok: {where}")


@app.command()
def demo(
    keep_logs: Optional[Path] = typer.Option(None, help="Write the processes' logs into this folder."),
    upstream: list[str] = typer.Option(
        [], help="PROVIDER=URL: send that provider's traffic to a real endpoint (e.g. openai=https://api.openai.com); "
        "the SDK key comes from OPENAI_API_KEY / ANTHROPIC_API_KEY."
    ),
) -> None:
    """Start emulator + nadir-extproc + Envoy, send sample traffic with the official SDKs, print a table."""
    from nadir_extproc.demo import run_demo

    urls = {}
    for item in upstream:
        provider, sep, url = item.partition("=")
        if not sep:
            typer.echo(f"error: --upstream takes PROVIDER=URL, got {item!r}", err=True)
            raise typer.Exit(2)
        urls[provider.strip()] = url.strip()
    raise typer.Exit(run_demo(keep_logs, upstream_urls=urls))


from nadir_extproc.pricing.explain import cost_command  # noqa: E402

app.command(name="cost")(cost_command)

from nadir_extproc.ledger.cli import ledger_app, report as report_command  # noqa: E402
app.command(name="report")(report_command)
app.add_typer(ledger_app, name="ledger")

from nadir_extproc.routing.cli import router_app  # noqa: E402
app.add_typer(router_app, name="router")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
