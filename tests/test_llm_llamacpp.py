"""A real OpenAI-compatible server: llama.cpp (llama-cpp-python[server]) serving the bundled SmolLM2 GGUF.

`igft label` records the toy data through `openai-compatible:`, then replays the recording with the
server gone. Skipped where llama_cpp is not importable (install the `[llamacpp]` extra; CI does).
SmolLM2-135M cannot really do GIFA: many conversations fail; this tests the live path, not the method.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import pytest

from igft.cli import main

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def llamacpp_server(tmp_path):
    pytest.importorskip("llama_cpp")
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python without its [server] extra")
    from igft.llm.local_models import OfflineModelMissing, smollm2_gguf_path

    try:
        gguf = smollm2_gguf_path()
    except OfflineModelMissing as err:
        pytest.skip(str(err))
    port = _free_port()
    log = tmp_path / "llamacpp.log"  # a file, not a pipe: the server logs a lot and would block on a full pipe
    with open(log, "wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host",
                                    "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", "2"],
                                   stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(url + "/models", timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"llama.cpp server did not start: {log.read_text(errors='replace')[-500:]}")
                time.sleep(0.5)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def test_label_toy_data_through_llamacpp_then_replay_without_it(llamacpp_server, tmp_path, monkeypatch):
    url, process = llamacpp_server
    monkeypatch.delenv("OPENAI_COMPATIBLE_API_KEY", raising=False)
    cassette, out = tmp_path / "cassette", tmp_path / "live"
    common = ["--max-conversations", "3", "--max-failed-share", "1", "--no-progress", "--max-retries", "1"]
    code = main(["label", "--llm", f"openai-compatible:{url}:smollm2", "--embedder", "hashing", "--mode", "record",
                 "--cassette", str(cassette), "--out", str(out), "--data", _toy(), "--request-timeout", "120", *common])
    assert code == 0
    live = json.loads((out / "stats.json").read_text())
    assert live["usage"]["live_calls"] >= 3 and live["conversations"] == 3
    assert json.loads((cassette / "run.json").read_text())["llm"] == "openai-compatible:smollm2"  # no endpoint
    assert url not in (cassette / "lm.jsonl").read_text()

    process.terminate()
    process.wait(timeout=30)
    replay = tmp_path / "replay"
    assert main(["label", "--cassette", str(cassette), "--mode", "replay", "--out", str(replay), "--data", _toy(),
                 *common]) == 0
    replayed = json.loads((replay / "stats.json").read_text())
    assert replayed["usage"]["live_calls"] == 0 and replayed["usage"]["cached_calls"] == live["usage"]["live_calls"]
    assert replayed["failed_conversations"] == live["failed_conversations"]
    if (out / "labels.csv").stat().st_size:
        assert pd.read_csv(replay / "labels.csv").equals(pd.read_csv(out / "labels.csv"))


def _toy() -> str:
    from igft.resources import toy_conversations_path

    return str(toy_conversations_path())
