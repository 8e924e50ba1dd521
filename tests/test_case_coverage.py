"""Every shared fault case (``../shared/cases/*.json``) is *loaded* by a test: some test under
``tests/`` passes the case's file stem (e.g. ``08-ext-proc-content-length-after-body-mutation``)
to ``load_case`` (``tests/conftest.py``, the one reader of case files) — as a literal argument, or
through a ``pytest.mark.parametrize`` argument that the test passes on to ``load_case``. A name
in a docstring, a comment, a string that is never loaded, or a path read some other way does not
count. A new case without a test that reads it fails here."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
LOADER = "load_case"


def _is_loader_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    return (isinstance(f, ast.Name) and f.id == LOADER) or (isinstance(f, ast.Attribute) and f.attr == LOADER)


def _stem_arg(call: ast.Call) -> ast.expr | None:
    """The case-name argument of ``load_case(cases_dir, stem)`` (positional or ``stem=``)."""
    if len(call.args) >= 2:
        return call.args[1]
    return next((k.value for k in call.keywords if k.arg == "stem"), None)


def _parametrized(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, list[ast.expr]]:
    """argument name -> the value expressions that ``pytest.mark.parametrize`` gives it."""
    out: dict[str, list[ast.expr]] = {}
    for dec in fn.decorator_list:
        if not (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute) and dec.func.attr == "parametrize"):
            continue
        if len(dec.args) < 2 or not isinstance(dec.args[0], ast.Constant | ast.Tuple | ast.List):
            continue
        first = dec.args[0]
        if isinstance(first, ast.Constant):
            names = [n.strip() for n in str(first.value).split(",")]
        else:
            names = [e.value for e in first.elts if isinstance(e, ast.Constant)]
        values = dec.args[1].elts if isinstance(dec.args[1], ast.List | ast.Tuple) else []
        for v in values:
            items = v.elts if len(names) > 1 and isinstance(v, ast.Tuple | ast.List) else [v]
            for name, item in zip(names, items, strict=False):
                out.setdefault(name, []).append(item)
    return out


def loaded_stems(source: str) -> set[str]:
    """Case stems that ``source`` passes to ``load_case`` (a trailing ``.json`` is dropped)."""
    tree = ast.parse(source)
    found: set[str] = set()
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        params = _parametrized(fn) if not isinstance(fn, ast.Module) else {}
        for call in (n for n in ast.walk(fn) if _is_loader_call(n)):
            arg = _stem_arg(call)
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add(arg.value)
            elif isinstance(arg, ast.Name) and arg.id in params:
                found |= {v.value for v in params[arg.id] if isinstance(v, ast.Constant) and isinstance(v.value, str)}
    return {s.removesuffix(".json") for s in found}


def test_every_shared_case_is_loaded_by_a_test(cases_dir):
    stems = sorted(p.stem for p in cases_dir.glob("*.json"))
    assert stems, f"no cases in {cases_dir}"
    used: set[str] = set()
    for p in TESTS.rglob("*.py"):
        if p.resolve() != Path(__file__).resolve():
            used |= loaded_stems(p.read_text(encoding="utf-8", errors="replace"))
    missing = [s for s in stems if s not in used]
    assert not missing, f"shared cases no test loads with load_case: {missing}"


def test_only_a_name_passed_to_load_case_counts():
    src = (
        '"""covers 99-some-case"""\n'
        "# 98-other-case\n"
        "NAMES = ['95-listed-never-loaded']\n"
        "def t(cases_dir):\n"
        '    """97-third-case"""\n'
        "    open(cases_dir / '94-read-another-way.json')\n"
        "    load_case(cases_dir, '96-loaded-case')\n"
        "    helpers.load_case(cases_dir, stem='93-keyword.json')\n"
        "@pytest.mark.parametrize(('name', 'want'), [('92-param', 1), ('91-param.json', 2)])\n"
        "def u(cases_dir, name, want):\n"
        "    load_case(cases_dir, name)\n"
        "@pytest.mark.parametrize('other', ['90-param-not-loaded'])\n"
        "def v(cases_dir, other):\n"
        "    load_case(cases_dir, '89-literal')\n"
    )
    assert loaded_stems(src) == {"96-loaded-case", "93-keyword", "92-param", "91-param", "89-literal"}
