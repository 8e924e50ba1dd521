"""What every ``nadir-extproc`` command shares: loading the settings, or saying why not."""

from __future__ import annotations

from pathlib import Path

import typer

from nadir_extproc.config import ConfigError, Settings, load_settings


def settings_or_exit(config: Path | str | None) -> Settings:
    """The settings from ``config`` (else ``$NADIR_CONFIG``, else the defaults; ``load_settings``),
    or ``error: <what is wrong>`` on stderr and exit status 2 — the same for every command."""
    try:
        return load_settings(config)
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
