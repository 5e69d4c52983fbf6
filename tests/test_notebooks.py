"""The three notebooks run top to bottom in dummy mode, and nothing saved in them leaks a secret or a local path."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import REPO_ROOT

NOTEBOOKS = ["stage1.ipynb", "Step2_finetuning.ipynb", "LLMs_at_your_service.ipynb"]
SECRET_PATTERNS = [re.compile(p) for p in (r"sk-[A-Za-z0-9_\-]{16,}", r"(?i)api[_-]?key\s*=\s*['\"][^'\"]{8,}",
                                           r"(?i)bearer\s+[A-Za-z0-9_\-\.]{16,}", r"hf_[A-Za-z0-9]{20,}")]
LOCAL_PATH_PATTERNS = [re.compile(p) for p in (r"/root/", r"/home/[^/\s]+/", r"/Users/[^/\s]+/", r"/work/", r"[A-Z]:\\\\Users")]


def _saved_text(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    parts = []
    for cell in nb["cells"]:
        parts.append("".join(cell.get("source", "")))
        for output in cell.get("outputs", []):
            parts.append(json.dumps(output))
    return "\n".join(parts)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_saved_notebook_has_no_secret_or_local_path(name):
    text = _saved_text(REPO_ROOT / name)
    for pattern in SECRET_PATTERNS + LOCAL_PATH_PATTERNS:
        assert not pattern.search(text), f"{name} contains {pattern.pattern!r}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_starts_with_the_dummy_mode_toggle(name):
    nb = json.loads((REPO_ROOT / name).read_text(encoding="utf-8"))
    sources = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert any("DUMMY_MODE = True" in s for s in sources[:2]), "the first code cells must hold DUMMY_MODE = True"


# CI runs the notebooks for their machinery: a short Stage 2 (the demo's test checks the full one's targets)
QUICK_STAGE2 = ("STAGE2_STEPS = 24", "STAGE2_STEPS = 4")


def _execute(name: str, workdir: Path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(REPO_ROOT / name, as_version=4)
    for cell in nb.cells:
        cell.source = cell.source.replace(*QUICK_STAGE2)
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(workdir)}})
    client.execute()  # raises CellExecutionError on any cell error
    return nb


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes_in_dummy_mode(name, tmp_path, monkeypatch):
    monkeypatch.setenv("IGFT_NOTEBOOK_OUT", str(tmp_path / "out"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    _execute(name, REPO_ROOT)
    assert any((tmp_path / "out").rglob("*")), "the notebook wrote no artifact"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_jupyterlab_is_installed_by_setup():
    """`make setup` installs JupyterLab (dev/notebooks extras); `make notebook` runs `python -m jupyter lab`."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "jupyter", "lab", "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert re.match(r"^\d+\.\d+", done.stdout.strip())
    make = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^notebook:.*\n\t.*jupyter lab", make, re.MULTILINE)
    pytest.importorskip("ipywidgets")  # tqdm's notebook bars need it ("IProgress not found" otherwise)


def test_jupyter_server_answers_its_api_on_localhost(tmp_path):
    """The server `make notebook` starts comes up on 127.0.0.1 and answers GET /api with its version."""
    import json as json_module
    import subprocess
    import sys
    import time
    import urllib.request

    port, token = _free_port(), "igft-test-token"
    server = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
                               "--ServerApp.open_browser=False", "--allow-root"],  # CI containers run as root
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        answer, deadline = None, time.monotonic() + 120
        while answer is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api?token={token}", timeout=5) as response:
                    answer = json_module.loads(response.read())
            except OSError:
                time.sleep(0.5)
        assert answer is not None, f"jupyter lab did not answer (exit {server.poll()})"
        assert "version" in answer
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token={token}", timeout=10) as response:
            assert json_module.loads(response.read())["type"] == "directory"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.mark.parametrize("name", ["LLMs_at_your_service.ipynb", "Step2_finetuning.ipynb"])
def test_colab_cell_installs_from_one_variable_and_names_the_placeholder(name, monkeypatch, capsys):
    import importlib.util

    nb = json.loads((REPO_ROOT / name).read_text(encoding="utf-8"))
    first = "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])
    assert re.search(r"^IGFT_INSTALL_SOURCE = ", first, re.MULTILINE)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "igft" else real(n, *a))
    calls = []
    import subprocess
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    exec(compile(first, name, "exec"), {})
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "IGFT_INSTALL_SOURCE is a placeholder" in out[0] and not calls
