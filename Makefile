# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast compat compat-env proto clean bench fuzz soak

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/nadir-extproc demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The pure tests only (no Envoy, no servers, no databases): about a minute; `make test` runs all.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m pure $(PYTEST_ARGS)

# Property-based tests with the long hypothesis profile (3000 examples each; `make test` runs 60).
fuzz: $(STAMP)
	$(BIN)/python -m pytest -q tests/fuzz --hypothesis-profile=long $(PYTEST_ARGS)

# 10-minute soak through a real Envoy (fixed rate, mixed traffic, a kill -9 mid-run); prints its
# report (README "Reliability"). SOAK_ARGS="--minutes 1" for a shorter run.
soak: $(STAMP)
	$(BIN)/python -m tests.reliability.soak $(SOAK_ARGS)

# Request-path benchmark (bench/run.py): installs wrk if missing, ends by itself (~10 min);
# BENCH_ARGS=--quick for a short smoke run.
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Every client of the compatibility suite (tests/compat; `make test` runs only the official SDKs).
# Client venvs and node_modules are built on first use, cached in .cache/compat (gitignored).
compat: $(STAMP)
	NADIR_COMPAT_ALL=1 $(BIN)/python -m pytest -q tests/compat $(PYTEST_ARGS)

compat-env: $(STAMP)
	$(BIN)/python -m tests.compat.env

# Regenerate the Python stubs in nadir_extproc/pb from proto/ (tests fail when they drift).
proto: $(STAMP)
	$(BIN)/python -m nadir_extproc.pb.generate

clean:
	rm -rf $(VENV)
