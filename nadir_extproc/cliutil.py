"""What every ``nadir-extproc`` command shares: loading the settings, or saying why not."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

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


def _looked_in(path: Path) -> str:
    return "" if path.is_absolute() else f" (looked in {Path.cwd()})"


def folder_or_exit(path: Path, option: str) -> Path:
    """``path`` when it is an existing folder; else ``error: OPTION PATH: no such folder (looked in
    CWD)`` (or ``is a file, not a folder``) on stderr and exit status 2 — the one-line usage error
    ``cost --response`` gives for a missing file, not Python's ``[Errno 2]`` line."""
    if path.is_dir():
        return path
    why = "is a file, not a folder" if path.exists() else "no such folder" + _looked_in(path)
    typer.echo(f"error: {option} {path}: {why}", err=True)
    raise typer.Exit(2)


def missing_in_folder_exit(e: OSError, folder: Path, option: str) -> NoReturn:
    """Exit 2 with one line for an ``OSError`` met while reading what the folder ``option`` names:
    ``error: OPTION FOLDER: no NAME in it`` when the missing file is inside it, else
    ``error: FILE: <strerror>`` (never Python's ``[Errno N]`` form)."""
    name = Path(e.filename) if e.filename else None
    why = (e.strerror or type(e).__name__).lower()
    if name is not None and isinstance(e, FileNotFoundError) and name.parent.resolve() == folder.resolve():
        typer.echo(f"error: {option} {folder}: no {name.name} in it", err=True)
    else:
        typer.echo(f"error: {name if name is not None else option}: {why}", err=True)
    raise typer.Exit(2)
