"""Shared test fixtures: where the shared data lives (read in place, never copied into the repo)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NADIR_SHARED_DIR", REPO.parent / "shared"))
PROVIDER_RESPONSES = SHARED / "data" / "provider-responses"
CASES = SHARED / "cases"


@pytest.fixture(scope="session")
def provider_responses() -> Path:
    """Folder of recorded real provider interactions; skips the test when it is absent."""
    if not (PROVIDER_RESPONSES / "index.jsonl").is_file():
        pytest.skip(f"recorded provider responses not found at {PROVIDER_RESPONSES} (set NADIR_SHARED_DIR)")
    return PROVIDER_RESPONSES


@pytest.fixture(scope="session")
def provider_index(provider_responses: Path) -> list[dict]:
    """The rows of ``index.jsonl`` (one recorded interaction each)."""
    with open(provider_responses / "index.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="session")
def cases_dir() -> Path:
    """Folder of shared fault cases; skips the test when it is absent."""
    if not CASES.is_dir():
        pytest.skip(f"shared cases not found at {CASES} (set NADIR_SHARED_DIR)")
    return CASES


def load_case(cases_dir: Path, stem: str) -> dict:
    """The shared fault case ``<stem>.json`` (``tests/test_case_coverage.py`` checks that every
    case is loaded this way by some test)."""
    return json.loads((cases_dir / f"{stem}.json").read_text(encoding="utf-8"))
