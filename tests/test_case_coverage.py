"""Every shared fault case (``../shared/cases/*.json``) has a test: some test file under ``tests/``
names the case's file stem (e.g. ``08-ext-proc-content-length-after-body-mutation``), usually in the
docstring of the test that asserts its expected values. A new case without a test fails here."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_every_shared_case_is_named_by_a_test(cases_dir):
    stems = sorted(p.stem for p in cases_dir.glob("*.json"))
    assert stems, f"no cases in {cases_dir}"
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in TESTS.rglob("*.py") if p.resolve() != Path(__file__).resolve()]
    missing = [s for s in stems if not any(s in t for t in texts)]
    assert not missing, f"shared cases with no test naming them: {missing}"
