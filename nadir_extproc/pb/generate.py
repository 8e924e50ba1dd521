"""Generate the Python stubs in ``nadir_extproc/pb/`` from ``proto/nadir_extproc/pb/*.proto``.

Run ``make proto`` (or ``python -m nadir_extproc.pb.generate [OUT_DIR]``). The generated files are
committed; ``tests/protocol/test_stub_drift.py`` regenerates into a temporary folder and fails when the
committed stubs differ from what ``proto/`` produces.

Needs the ``grpcio-tools`` dev dependency (pinned in pyproject.toml, because the generated text
depends on its version).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "proto"


def proto_files() -> list[Path]:
    """All ``.proto`` files of the subset, sorted (paths under ``proto/``)."""
    return sorted((PROTO_ROOT / "nadir_extproc" / "pb").glob("*.proto"))


def generate(out_dir: Path) -> None:
    """Write ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` for every proto into ``out_dir``.

    Raises ``RuntimeError`` when protoc reports an error.
    """
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p.relative_to(PROTO_ROOT)) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO)
