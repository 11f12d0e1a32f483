PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-unit lint bench install clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,airflow,chart,bench]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/lgsp demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PATH=$(CURDIR)/$(BIN):$$PATH scripts/validate_compose.sh

chromium:
	scripts/install_chromium.sh

test: lint chromium
	$(BIN)/python -m pytest --durations=30

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

bench: $(STAMP)
	rm -f bench/out/results.jsonl
	LGSP_BENCH_FULL=1 $(BIN)/python -m pytest bench -m bench -s -p no:cacheprovider --timeout 3600
	$(BIN)/python -m bench.summary

clean:
	rm -rf $(VENV) .lgsp
