"""The Dockerfile (the image cannot be built here: no Docker daemon): hadolint-clean, its wheel
step run exactly as written, and the image's ENV + ENTRYPOINT/CMD + HEALTHCHECK exercised against
the package built by that step."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

from nadir_extproc.stack import free_port
from tests.deploy.k8s_tools import REPO, tool

DOCKERFILE = (REPO / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    out, cur = [], ""
    for line in DOCKERFILE.splitlines():
        if line.lstrip().startswith("#") and not cur:
            continue
        cur += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            if cur:
                word, _, rest = cur.partition(" ")
                out.append((word.upper(), rest.strip()))
            cur = ""
    return out


def _final_stage() -> list[tuple[str, str]]:
    ins = _instructions()
    last_from = max(i for i, (w, _) in enumerate(ins) if w == "FROM")
    return ins[last_from:]


def image_environment() -> dict[str, str]:
    """The final stage's ENV (without PATH): what every container of the image starts with."""
    env = {}
    for w, a in _final_stage():
        if w == "ENV":
            for item in shlex.split(a):
                k, _, v = item.partition("=")
                if k != "PATH":
                    env[k] = v
    return env


def test_hadolint_passes_and_catches_a_bad_dockerfile(tmp_path):
    r = subprocess.run([tool("hadolint"), str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    r = subprocess.run([tool("hadolint"), str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "DL3007" in r.stdout and "DL3013" in r.stdout


def test_final_stage_is_non_root_runtime_only_with_graceful_stop():
    final = _final_stage()
    words = dict((w, a) for w, a in final if w != "ENV")
    assert words["USER"] == "10001:10001"
    assert words["STOPSIGNAL"] == "SIGTERM"
    assert json.loads(words["ENTRYPOINT"]) == ["nadir-extproc"] and json.loads(words["CMD"]) == ["serve"]
    assert "EXPOSE" in words and words["EXPOSE"] == "50052"  # health only; ExternalProcessor is loopback
    # Only the venv built from the wheel is copied in; no source tree, no dev/demo extras.
    copies = [a for w, a in final if w == "COPY"]
    assert copies == ["--from=build /opt/nadir /opt/nadir"]
    install = next(a for w, a in _instructions() if w == "RUN" and "/opt/nadir/bin/pip install" in a)
    assert re.search(r'"\$\{whl\}\[prometheus,postgres\]"', install), install  # no demo/dev/train extras
    # The k8s manifests run the same user id and command.
    import yaml

    base = yaml.safe_load((REPO / "k8s" / "base" / "deployment.yaml").read_text())
    ext = base["spec"]["template"]["spec"]["initContainers"][0]
    assert ext["args"] == ["serve"] and ext["securityContext"]["runAsUser"] == 10001


def test_build_backend_pin_matches_pyproject():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    pin = re.search(r'"hatchling==([0-9.]+)"', DOCKERFILE).group(1)
    assert any(d.replace(" ", "") == f"hatchling=={pin}" for d in pyproject["project"]["optional-dependencies"]["dev"])
    assert pyproject["build-system"]["build-backend"] == "hatchling.build"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built by the Dockerfile's marked step, run as written (offline: no deps, no
    isolation; hatchling comes from the dev extra) in a copy of exactly what .dockerignore lets in."""
    src = tmp_path_factory.mktemp("ctx")
    subprocess.run(["cp", "-r", str(REPO / "pyproject.toml"), str(REPO / "README.md"), str(REPO / "nadir_extproc"), str(src)], check=True)
    block = DOCKERFILE.split("# >>> wheel", 1)[1].split("# <<< wheel", 1)[0]
    run = [l for l in block.splitlines() if l.startswith("RUN ")]
    assert len(run) == 1
    argv = shlex.split(run[0][4:])
    assert argv[:2] == ["pip", "wheel"]
    out = tmp_path_factory.mktemp("wheels")
    argv = [sys.executable, "-m", *argv]
    argv[argv.index("/wheels")] = str(out)
    r = subprocess.run(argv, cwd=src, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (whl,) = out.glob("nadir_extproc-*.whl")
    return whl


def test_wheel_carries_the_package_data_and_only_runtime_requirements(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    in_repo = {str(p.relative_to(REPO)) for p in (REPO / "nadir_extproc").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    missing = {n for n in in_repo if n not in names}
    assert not missing, f"files the image would lack: {sorted(missing)[:10]}"
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    requires = [l.split(": ", 1)[1] for l in meta.splitlines() if l.startswith("Requires-Dist: ") and "extra ==" not in l]
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    from packaging.requirements import Requirement

    norm = lambda s: (Requirement(s).name.lower(), frozenset(map(str, Requirement(s).specifier)), frozenset(Requirement(s).extras))
    assert sorted(map(norm, requires)) == sorted(map(norm, pyproject["project"]["dependencies"]))
    # The extras the image installs exist in the wheel with the pyproject's requirements.
    for extra in ("prometheus", "postgres"):
        in_wheel = [l.split(": ", 1)[1].split(";")[0] for l in meta.splitlines() if l.startswith("Requires-Dist: ") and re.search(rf"extra == ['\"]{extra}['\"]", l)]
        assert sorted(map(norm, in_wheel)) == sorted(map(norm, pyproject["project"]["optional-dependencies"][extra])), extra


def test_image_command_and_healthcheck_against_the_built_package(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    final = _final_stage()
    image_env = image_environment()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("NADIR_")}, **image_env}
    # ExternalProcessor: not set by the image (the settings' default is loopback 127.0.0.1:50051; an
    # env var would override the k8s settings files' `listen`); health only, on every address.
    assert "NADIR_LISTEN" not in image_env
    assert image_env["NADIR_HEALTH_LISTEN"] == "0.0.0.0:50052"
    env["NADIR_LISTEN"] = f"127.0.0.1:{free_port()}"  # the one change: free ports
    env["NADIR_HEALTH_LISTEN"] = f"0.0.0.0:{free_port()}"
    env["PYTHONPATH"] = str(site)  # the wheel's copy of the package shadows the repo's
    probe = subprocess.run([sys.executable, "-c", "import nadir_extproc; print(nadir_extproc.__file__)"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert probe.stdout.strip().startswith(str(site))
    health = next(a for w, a in final if w == "HEALTHCHECK")
    hc_argv = json.loads(health.split(" CMD ", 1)[1])
    assert hc_argv[0] == "python"
    hc_argv[0] = sys.executable

    def healthcheck() -> int:
        return subprocess.run(hc_argv, env=env, capture_output=True, timeout=30, cwd=tmp_path).returncode

    assert healthcheck() != 0  # nothing listening yet
    entry = json.loads(dict((w, a) for w, a in final)["ENTRYPOINT"]) + json.loads(dict((w, a) for w, a in final)["CMD"])
    assert entry == ["nadir-extproc", "serve"]
    p = subprocess.Popen([sys.executable, "-m", "nadir_extproc.cli", *entry[1:]], env=env, stdout=subprocess.PIPE, stderr=open(tmp_path / "serve.log", "w"), text=True, cwd=tmp_path)
    try:
        assert "listening" in p.stdout.readline(), (tmp_path / "serve.log").read_text()
        assert healthcheck() == 0
        p.send_signal(signal.SIGTERM)  # STOPSIGNAL
        assert p.wait(30) == 0
        assert healthcheck() != 0
    finally:
        if p.poll() is None:
            p.kill()
        p.stdout.close()
