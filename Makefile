# Two commands: `make run` and `make test`. Both build the virtualenv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench migrate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m bot chat --config config.yaml

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

migrate: $(STAMP)
	$(PY) -m bot migrate --config config.yaml

# The benchmarks' peer (pywa) lives in its own virtualenv, never in the project's.
BENCH_VENV := bench/.venv
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): bench/requirements-peer.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q -r bench/requirements-peer.txt \
		&& touch $(BENCH_STAMP) \
		|| echo "bench: pywa could not be installed; its figure will read n/a"

bench: $(STAMP) $(BENCH_STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) data/*.sqlite3*
