"""Every shared fault case (``../shared/cases/*.json``) is loaded by a test: some test file under
``tests/`` uses the case's file stem (e.g. ``08-ext-proc-content-length-after-body-mutation``) or
its file name as a string value in code — ``load_case(cases_dir, "<stem>")``,
``cases_dir / "<stem>.json"``, a parametrize list — not merely in a docstring or comment. A new case
without a test that reads it fails here."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes (module, class and function docstrings)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                out.add(id(body[0].value))
    return out


def code_strings(source: str) -> set[str]:
    """Every string constant of ``source`` used as a value in code (docstrings and comments left
    out)."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip}


def test_every_shared_case_is_loaded_by_a_test(cases_dir):
    stems = sorted(p.stem for p in cases_dir.glob("*.json"))
    assert stems, f"no cases in {cases_dir}"
    used: set[str] = set()
    for p in TESTS.rglob("*.py"):
        if p.resolve() != Path(__file__).resolve():
            used |= code_strings(p.read_text(encoding="utf-8", errors="replace"))
    missing = [s for s in stems if s not in used and f"{s}.json" not in used]
    assert not missing, f"shared cases no test loads: {missing}"


def test_a_name_in_a_docstring_or_comment_does_not_count():
    src = '"""covers 99-some-case"""\n# 98-other-case\ndef t():\n    """97-third-case"""\n    load("96-loaded-case")\n'
    assert code_strings(src) == {"96-loaded-case"}
