"""The client environments of the compatibility suite, built on first use and cached in the repo's
gitignored ``.cache/compat/``:

- one Python virtualenv per ``tests/compat/python/requirements-<group>.txt`` (``ci``,
  ``frameworks``, ``instructor``, ``pydantic-ai``), so the clients' pins never meet the project's;
- ``tests/compat/node/node_modules`` from ``package.json`` + ``package-lock.json`` (``npm ci``).

Each is rebuilt only when its requirements/lock file changes (a stamp holds the file's sha256).
Run ``python -m tests.compat.env [group ...|node]`` to build ahead of time (``make compat-env``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CACHE = REPO / ".cache" / "compat"
NODE_DIR = HERE / "node"
PY_GROUPS = ("ci", "frameworks", "instructor", "pydantic-ai")


class EnvError(RuntimeError):
    """A client environment could not be built (the message says which step failed)."""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(args: list[str], cwd: Path | None = None) -> None:
    p = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise EnvError(f"{' '.join(args)} failed ({p.returncode}):\n{(p.stdout + p.stderr)[-4000:]}")


def python_env(group: str) -> Path:
    """The ``python`` of the venv for ``group``, built (``python -m venv`` + ``pip install -r``)
    when missing or when its requirements file changed. Raises ``EnvError``."""
    req = HERE / "python" / f"requirements-{group}.txt"
    if not req.is_file():
        raise EnvError(f"no requirements file {req}")
    venv = CACHE / f"py-{group}"
    py = venv / "bin" / "python"
    stamp = venv / ".stamp"
    want = _sha(req)
    if py.exists() and stamp.exists() and stamp.read_text() == want:
        return py
    shutil.rmtree(venv, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(req)])
    stamp.write_text(want)
    return py


def node_bin() -> str | None:
    """The ``node`` executable, or ``None`` when Node is not installed."""
    return shutil.which("node")


def node_env() -> Path:
    """``tests/compat/node`` with its ``node_modules`` installed by ``npm ci`` from the committed
    lock file (npm's cache under ``.cache/compat/npm``), rebuilt when the lock file changed.
    Raises ``EnvError`` when npm is missing or the install fails."""
    npm = shutil.which("npm")
    if npm is None or node_bin() is None:
        raise EnvError("node/npm not installed (.ci/run installs Debian's nodejs and npm)")
    lock = NODE_DIR / "package-lock.json"
    stamp = NODE_DIR / "node_modules" / ".nadir-stamp"
    want = _sha(lock)
    if stamp.exists() and stamp.read_text() == want:
        return NODE_DIR
    env_cache = str(CACHE / "npm")
    _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error", "--cache", env_cache], cwd=NODE_DIR)
    stamp.write_text(want)
    return NODE_DIR


def main(argv: list[str]) -> int:
    targets = argv or [*PY_GROUPS, "node"]
    for t in targets:
        print(f"compat env {t}: ", end="", flush=True)
        print(node_env() if t == "node" else python_env(t))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
