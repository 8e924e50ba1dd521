"""The package's floors (issue 11): pricing imports neither routing nor config; the per-request
record is read typed by every sink (no ``getattr`` on it); the x-nadir-* names live in one module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "nadir_extproc"


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def test_pricing_imports_neither_routing_nor_config():
    bad = {f"{p.relative_to(PKG)}: {m}" for p in (PKG / "pricing").rglob("*.py") for m in _imports(p)
           if m.startswith(("nadir_extproc.routing", "nadir_extproc.config", "nadir_extproc.cli",
                            # and no API shape or provider rule: those come in as plain values
                            "nadir_extproc.dialects", "nadir_extproc.providers", "nadir_extproc.explain"))}
    assert not bad


def test_the_record_sits_on_the_floor():
    # record.py imports nothing of ours at run time (types only under TYPE_CHECKING).
    src = (PKG / "record.py").read_text(encoding="utf-8")
    runtime = src.split("if TYPE_CHECKING:")[0]
    assert "from nadir_extproc" not in runtime and "import nadir_extproc" not in runtime


def test_no_sink_reads_the_record_with_getattr():
    pat = re.compile(r"getattr\((out|o|outcome|record)\b")
    hits = [f"{p.relative_to(PKG)}:{i}" for p in PKG.rglob("*.py") if "/pb/" not in str(p)
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pat.search(line)]
    assert not hits


def test_x_nadir_response_header_names_are_defined_once():
    # Only headers.py assigns an "x-nadir-..." literal to a name (config defaults read it too).
    pat = re.compile(r'^\s*[A-Z_]+\s*(?::\s*\w+)?\s*=\s*"x-nadir-', re.M)
    owners = sorted(str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if pat.search(p.read_text(encoding="utf-8")))
    assert owners == ["headers.py"]


_NAMES = r"(openai_chat|openai_responses|anthropic_messages|gemini|openai|anthropic|google|vertex_ai|azure|groq)"
_BRANCH = re.compile(rf'(==|!=)\s*"{_NAMES}"|"{_NAMES}"\s*(==|!=)|startswith\("{_NAMES}|\bif\b[^#]*\bin \("{_NAMES}"')


def test_no_code_outside_dialects_and_providers_branches_on_their_names():
    # The demo and the emulator are clients / the provider stand-in: they speak one API per call on purpose.
    skip = ("dialects/", "providers/", "emulator/", "demo.py")
    hits = [f"{p.relative_to(PKG)}:{i}" for p in PKG.rglob("*.py")
            if "/pb/" not in str(p) and not str(p.relative_to(PKG)).startswith(skip)
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if _BRANCH.search(line)]
    assert not hits
