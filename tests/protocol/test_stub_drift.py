"""The committed stubs in ``nadir_extproc/pb/`` must be exactly what ``proto/`` generates.

Regenerates every stub into a temporary folder with the project's own generator and compares
byte for byte, so editing a ``.proto`` without running ``make proto`` (or editing a generated
file by hand) fails here.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from nadir_extproc.pb import generate as gen

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "nadir_extproc" / "pb"
PROTO_DIR = REPO / "proto" / "nadir_extproc" / "pb"
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def _stub_files(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_file() and p.name.endswith(SUFFIXES)}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("pb_out")
    gen.generate(out)
    folder = out / "nadir_extproc" / "pb"
    assert folder.is_dir(), f"generator wrote nothing under {folder}"
    files = _stub_files(folder)
    assert files, "generator produced no stub files"
    return files


def test_every_proto_is_generated(generated: dict[str, Path]) -> None:
    protos = sorted(PROTO_DIR.glob("*.proto"))
    assert protos, f"no .proto files under {PROTO_DIR}"
    expected = {p.stem + suffix for p in protos for suffix in SUFFIXES}
    assert set(generated) == expected


def test_no_orphan_committed_stub(generated: dict[str, Path]) -> None:
    """A committed *_pb2* file with no generated counterpart is stale (e.g. its proto was removed)."""
    orphans = sorted(set(_stub_files(COMMITTED)) - set(generated))
    assert not orphans, f"committed stubs with no .proto behind them: {orphans}"


def test_committed_stubs_match_generated(generated: dict[str, Path]) -> None:
    problems: list[str] = []
    for name, fresh in generated.items():
        committed = COMMITTED / name
        if not committed.is_file():
            problems.append(f"{name}: generated but not committed")
            continue
        want, have = fresh.read_bytes(), committed.read_bytes()
        if want != have:
            diff = difflib.unified_diff(
                have.decode(errors="replace").splitlines(),
                want.decode(errors="replace").splitlines(),
                fromfile=f"committed/{name}",
                tofile=f"generated/{name}",
                lineterm="",
                n=1,
            )
            problems.append("\n".join(list(diff)[:40]))
    assert not problems, "stubs are out of date; run `make proto`:\n" + "\n\n".join(problems)
