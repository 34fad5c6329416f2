# Two commands for a newcomer: `make demo` and `make test`. Everything else is optional.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# torch first and pinned: a loose torch pulled in by a dependency would fetch a multi-GB CUDA build.
TORCH ?= torch==2.13.0

.PHONY: install demo test clean

$(BIN)/serkit: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]" "$(TORCH)"
	touch $(BIN)/serkit

install: $(BIN)/serkit

demo: install
	$(BIN)/serkit demo --out demo

test: install
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

clean:
	rm -rf $(VENV) demo runs
