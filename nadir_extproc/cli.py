"""The ``nadir-extproc`` command: ``serve`` (the ext_proc service), ``demo`` (the local stack),
``cost`` (explain one recorded bill: ``pricing.explain``), and the ``report`` / ``ledger`` /
``router`` groups from their packages."""

from __future__ import annotations

import json
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
    from nadir_extproc.cliutil import settings_or_exit
    from nadir_extproc.config import ConfigError
    from nadir_extproc.server import serve as run

    settings = settings_or_exit(config)
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
    from nadir_extproc.listeners import ListenerError, check_tls_files

    try:
        check_models(settings)  # the price file, and every model the settings name, fail fast
        check_tls_files(settings)  # before the ledger writer and exporters start
    except (ConfigError, ListenerError) as e:
        from nadir_extproc.config import settings_error

        typer.echo(f"error: {settings_error(str(e), config or os.environ.get('NADIR_CONFIG'))}", err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if workers > 1:
        if settings.uds:
            typer.echo("error: --workers cannot share a Unix socket (uds); use TCP", err=True)
            raise typer.Exit(2)
        from nadir_extproc.workers import Supervisor

        args = [a for a in (["--config", str(config)] if config else [])]
        try:
            code = Supervisor(settings, workers, args).run()
        except RuntimeError as e:  # a worker that did not start (its own error line is above): one line
            typer.echo(f"error: serve --workers {workers}: {e}", err=True)
            raise typer.Exit(1) from None
        raise typer.Exit(code)
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
    from nadir_extproc.listeners import BindError, preflight

    _writable_folder_or_exit(Path(settings.state_dir).expanduser(), "state_dir (or $NADIR_STATE_DIR)")
    if settings.ledger.enabled and settings.ledger.sqlite_dir and not settings.ledger.postgres_dsn:
        _writable_folder_or_exit(Path(settings.ledger.sqlite_dir).expanduser(), "ledger.sqlite_dir")
    import asyncio

    try:
        preflight(settings)  # before the ledger writer and exporters start: a busy port fails at once
        asyncio.run(run(settings, config_path=str(config) if config else os.environ.get("NADIR_CONFIG") or None))
    except BindError as e:  # a busy port: one line, not a traceback
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    except OSError as e:  # a file or folder the service needs at start-up (key-id secret, ledger …)
        where = f"{e.filename}: " if e.filename else ""
        typer.echo(f"error: cannot start: {where}{e.strerror or e} (check state_dir / $NADIR_STATE_DIR and the "
                   "file settings)", err=True)
        raise typer.Exit(1) from None


def _writable_folder_or_exit(folder: Path, setting: str) -> None:
    """Exit 2 with one line when ``folder`` cannot hold the service's files (the key-id secret, the
    SQLite ledger): it is a file, or its nearest existing parent is not a writable folder. Creates
    nothing (the service creates the folder when it starts)."""
    p = folder
    while not p.exists() and p != p.parent:
        p = p.parent
    if p.is_dir() and os.access(p, os.W_OK):
        return
    what = ("is a file, not a folder" if p == folder else f"cannot be created: {p} is a file") if p.exists() and not p.is_dir() \
        else f"cannot be created: {p} is not writable"
    typer.echo(f"error: {setting} {folder}: {what}", err=True)
    raise typer.Exit(2)


#: Exit status of ``nadir-extproc check``: the settings are valid / invalid (message on stderr).
CHECK_OK, CHECK_INVALID = 0, 2


@app.command()
def check(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML settings file to check (else $NADIR_CONFIG)."),
) -> None:
    """Validate a settings file without serving: every key, the listeners, the price file, the router policy, and every model in tiers / default_models / baseline_models. Exit 0 valid, 2 invalid."""
    from nadir_extproc.config import ConfigError, check_models, load_settings, settings_error
    from nadir_extproc.listeners import ListenerError, check_tls_files

    path = config or os.environ.get("NADIR_CONFIG") or None
    if path is not None and Path(path).is_dir():
        typer.echo(f"error: {settings_error('is a folder, not a file (give the settings file path)', path)}", err=True)
        raise typer.Exit(CHECK_INVALID)
    if path is not None and not Path(path).is_file():
        typer.echo(f"error: {settings_error('no settings file here (start from settings.example.yaml)', path)}", err=True)
        raise typer.Exit(CHECK_INVALID)
    try:
        settings = load_settings(config)
        check_models(settings)
        check_tls_files(settings)
    except (ConfigError, ListenerError) as e:
        typer.echo(f"error: {settings_error(str(e), path)}", err=True)
        raise typer.Exit(CHECK_INVALID) from None
    from nadir_extproc.routing.policy import stray_tiers

    for prov, tier, _ in stray_tiers(settings.policy()):  # typos of a declared tier failed above
        typer.echo(f"warning: tiers.{prov}.{tier}: tier {tier!r} is in no threshold or order, so the router never "
                   f"picks it; only a request pinned with x-nadir-tier: {tier} reaches it", err=True)
    where = config or os.environ.get("NADIR_CONFIG") or "defaults (no file)"
    typer.echo(f"ok: {where}")


@app.command()
def demo(
    keep_logs: Optional[Path] = typer.Option(None, help="Write the processes' logs into this folder."),
    upstream: list[str] = typer.Option(
        [], help="PROVIDER=URL: send that provider's traffic to a real endpoint (e.g. openai=https://api.openai.com); "
        "the SDK key comes from OPENAI_API_KEY / ANTHROPIC_API_KEY."
    ),
    state_dir: Optional[Path] = typer.Option(
        None, "--state-dir", envvar="NADIR_STATE_DIR",
        help="Keep the ledger here so `report` reads the demo's rows (else $NADIR_STATE_DIR; unset: a temp folder, removed)."),
) -> None:
    """Start emulator + nadir-extproc + Envoy, send sample traffic with the official SDKs, print a table."""
    from urllib.parse import urlsplit

    from nadir_extproc.demo import KEY_ENV, run_demo

    urls = {}
    for item in upstream:
        provider, sep, url = item.partition("=")
        if not sep:
            typer.echo(f"error: --upstream takes PROVIDER=URL, got {item!r}", err=True)
            raise typer.Exit(2)
        name = provider.strip().lower()
        if name not in KEY_ENV:
            typer.echo(f"error: --upstream {item!r}: the demo sends OpenAI and Anthropic traffic only "
                       f"(PROVIDER is one of {', '.join(KEY_ENV)})", err=True)
            raise typer.Exit(2)
        url = url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")) or urlsplit(url).path:
            typer.echo(f"error: --upstream {item!r}: URL is scheme://host[:port] without a path "
                       f"(e.g. {name}=https://api.{name}.com)", err=True)
            raise typer.Exit(2)
        urls[name] = url
    for option, folder in (("--keep-logs", keep_logs), ("--state-dir / $NADIR_STATE_DIR", state_dir)):
        if folder is None:
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            what = "is a file, not a folder" if isinstance(e, FileExistsError) or folder.is_file() else (e.strerror or type(e).__name__)
            typer.echo(f"error: {option} {folder}: {what}", err=True)
            raise typer.Exit(2) from None
    raise typer.Exit(run_demo(keep_logs, upstream_urls=urls, state_dir=state_dir))


@app.command(name="cost")
def cost_command(
    url: str = typer.Option(..., "--url", help="The request URL the response answered (provider and dialect come from it)."),
    response: Path = typer.Option(..., "--response", help="Response body file (- = standard input): JSON (gzip ok), a batch-result line, or raw SSE."),
    request: Optional[Path] = typer.Option(None, "--request", help="Request body file (JSON; - = standard input), optional."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object instead of a table."),
    explain_: bool = typer.Option(True, "--explain/--brief", help="Table: name each catalogue correction applied, with its source (default)."),
    provider: Optional[str] = typer.Option(None, "--provider", help="Override the provider: any provider name the README uses (openai, Vertex AI, Azure OpenAI, xAI …; registry names) or a genai-prices provider id."),
    dialect: Optional[str] = typer.Option(None, "--dialect", help="Override the dialect (e.g. openai_chat; an unknown name is refused with the list of known ones)."),
    status: Optional[int] = typer.Option(None, "--status", help="HTTP status of the response (>= 400: provider error)."),
    when: Optional[str] = typer.Option(None, "--when", help="Request time: ISO 8601 (UTC unless it has an offset), a duration ago (3d, 12h), today or yesterday; default now. Picks dated prices."),
    batch: Optional[bool] = typer.Option(None, "--batch/--no-batch", help="Force batch rates on/off (default: detected)."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Savings baseline model (default: config, else the most expensive routing tier model)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Settings file: tiers, baseline_models, price_file."),
    price_file: Optional[Path] = typer.Option(None, "--price-file", help="Operator price file (YAML/TOML) over the catalogue."),
) -> None:
    """Explain the bill of one recorded interaction: usage per class, rate, cost, baseline, saving. Exit 0 priced, 3 unpriced, 2 bad arguments.

    The saving is cost(same usage on the baseline model) - actual cost, signed; the baseline is the route's configured baseline model, else the most expensive of its routing tier models.
    """
    from urllib.parse import urlsplit

    from nadir_extproc.cliutil import settings_or_exit
    from nadir_extproc.config import Settings
    from nadir_extproc.explain import EXIT_UNPRICED, explain, provider_from_url, render_table
    from nadir_extproc.pricing.pricefile import PriceFileError, install_price_file

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # "api.openai.com/v1/..." would otherwise be an unknown host (exit 3, unpriced): say what to type.
        typer.echo(f"error: --url {url!r}: give the full request URL, scheme://host/path "
                   "(e.g. https://api.openai.com/v1/chat/completions)", err=True)
        raise typer.Exit(2)
    # The baseline candidates are the routing tiers (settings, else the defaults): the command
    # reads the settings; pricing itself knows nothing of routing or config.
    settings = settings_or_exit(config) if config is not None else Settings()
    if config is not None:
        from nadir_extproc.config import ConfigError, check_models

        try:
            check_models(settings)  # a misspelt baseline would print "baseline gpt-4oo None USD"
        except ConfigError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
    candidates = {p: list(t.values()) for p, t in settings.tiers.items()}
    pf = price_file
    if config is not None:
        pf = pf or (Path(settings.price_file) if settings.price_file else None)
    from nadir_extproc.dialects import DIALECTS  # not at import: `report` does not need the dialects

    if dialect is not None and dialect not in DIALECTS:
        typer.echo(f"error: --dialect {dialect!r}: known dialects are {', '.join(DIALECTS)}", err=True)
        raise typer.Exit(2)
    if pf is not None and not pf.is_file():
        _read_or_exit(pf, "--price-file" if price_file is not None else f"price_file (in {config})")
    try:
        if pf is not None:
            install_price_file(pf)
    except (OSError, ValueError, PriceFileError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if provider is not None:
        provider = _provider_or_exit(provider)  # after the price file: its providers are names too
    if config is not None:
        prov_key = provider or provider_from_url(url) or ""
        baseline = baseline or settings.baseline_models.get(prov_key)
    t = None
    if when:
        from nadir_extproc.ledger.cli import parse_when

        try:
            t = parse_when(when, "--when")  # the forms report --since takes: 2026-01-31T12:00, 3d, yesterday
        except typer.BadParameter as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
    resp_bytes = _read_or_exit(response, "--response")
    req_bytes = _read_or_exit(request, "--request") if request is not None else None
    result = explain(
        url, resp_bytes, req_bytes, provider=provider, dialect=dialect, status=status, when=t,
        batch=batch, baseline=baseline, candidates=candidates,
    )
    typer.echo(json.dumps(result, indent=2) if as_json else render_table(result, sources=explain_))
    if result.get("cost_usd") is None:
        raise typer.Exit(EXIT_UNPRICED)


def _read_or_exit(path: Path, option: str) -> bytes:
    """The bytes of the file an option names (``-``: standard input), or one line naming the option
    and what is wrong (exit 2)."""
    if str(path) == "-":
        return sys.stdin.buffer.read()
    try:
        return path.read_bytes()
    except FileNotFoundError:
        why = "no such file" + ("" if path.is_absolute() else f" (looked in {Path.cwd()})")
    except IsADirectoryError:
        why = "is a folder, not a file"
    except OSError as e:
        why = e.strerror or type(e).__name__
    typer.echo(f"error: {option} {path}: {why}", err=True)
    raise typer.Exit(2)


def _provider_or_exit(name: str) -> str:
    """``--provider NAME`` as the id pricing knows: a registered provider under any name the README
    uses for it (``providers.known.lookup``: ``gemini``, ``Vertex AI``, ``xAI`` …), a genai-prices
    provider id, or a provider the installed price file lists. Anything else is a bad argument
    (exit 2) naming the known providers and the closest match, not an unpriced answer."""
    import difflib

    from nadir_extproc.pricing import catalogue
    from nadir_extproc.providers import known

    entry = known.lookup(name)
    if entry is not None:
        return entry.id
    if catalogue.catalogue_provider_id(name) is not None:
        return name.strip().lower()
    ours = [e.id for e in known.ENTRIES]
    others = sorted({p.id for p in catalogue._all_providers()} - set(ours))  # noqa: SLF001 - listing, not pricing
    pf = catalogue.price_file()
    own = sorted(pf.providers) if pf is not None else []
    close = difflib.get_close_matches(name.strip().lower(), ours + others + own + list(catalogue.PROVIDER_IDS), n=3, cutoff=0.6)
    typer.echo(
        f"error: --provider {name!r} is not a known provider"
        + (f" (did you mean {', '.join(close)}?)" if close else "")
        + f"; use one of {', '.join(ours)} (also gemini, vertex, xai, azure openai)"
        + (f", a price-file provider ({', '.join(own)})" if own else "")
        + f", or a genai-prices id ({', '.join(others)}); a self-hosted model needs a --price-file listing it "
        "under its provider name (README 'The cost command')", err=True)
    raise typer.Exit(2)


from nadir_extproc.ledger.cli import ledger_app, report as report_command  # noqa: E402
app.command(name="report")(report_command)
app.add_typer(ledger_app, name="ledger")

from nadir_extproc.routing.cli import router_app  # noqa: E402
app.add_typer(router_app, name="router")


def main() -> None:
    """Console-script entry point. A usage error (missing or unknown option or command, bad value)
    is one line on stderr naming the fix and the command's ``--help``, exit 2 — not the boxed
    panel. (typer >= 0.20 carries its own copy of click: its exceptions are matched by class name.)"""
    try:
        rc = app(standalone_mode=False)
    except typer.Abort:  # Ctrl-C at a prompt
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as e:
        kinds = {c.__name__ for c in type(e).__mro__}
        if "ClickException" not in kinds:
            raise
        ctx = getattr(e, "ctx", None)
        if "NoArgsIsHelpError" in kinds:  # `nadir-extproc`, `nadir-extproc router`: the help
            typer.echo(ctx.get_help() if ctx is not None else str(e))
            sys.exit(2)
        if "UsageError" in kinds:
            cmd = ctx.command_path if ctx is not None else "nadir-extproc"
            typer.echo(f"error: {' '.join(e.format_message().split())} (see `{cmd} --help`)", err=True)
            sys.exit(2)
        typer.echo(f"error: {' '.join(e.format_message().split())}", err=True)
        sys.exit(e.exit_code)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
