"""Spec parsing and composition of build_lm / build_embedder (hermetic)."""
from __future__ import annotations

import json

import pytest

from igft.errors import IgftError
from igft.llm import (CassetteLM, MeteredLM, SpecError, ask, build_embedder, build_lm, parse_spec)


@pytest.mark.parametrize("spec, backend, model_id, name, base_url", [
    ("openai:gpt-4o", "openai", "gpt-4o", "openai:gpt-4o", None),
    ("openai-compatible:http://localhost:8000/v1:llama3", "openai-compatible", "llama3",
     "openai-compatible:llama3", "http://localhost:8000/v1"),
    ("openai-compatible:https://host.example:11434/v1:qwen2.5-7b", "openai-compatible", "qwen2.5-7b",
     "openai-compatible:qwen2.5-7b", "https://host.example:11434/v1"),
    ("local:smollm2", "local", "local:smollm2", "local:smollm2", None),
    ("hf:HuggingFaceTB/SmolLM2-360M-Instruct", "hf", "HuggingFaceTB/SmolLM2-360M-Instruct",
     "hf:HuggingFaceTB/SmolLM2-360M-Instruct", None),
    ("hf:/tmp/my adapter", "hf", "/tmp/my adapter", "hf:/tmp/my adapter", None),
    ("scripted", "scripted", "scripted", "scripted", None),
])
def test_lm_specs(spec, backend, model_id, name, base_url):
    parsed = parse_spec(spec)
    assert (parsed.backend, parsed.model_id, parsed.name, parsed.base_url) == (backend, model_id, name, base_url)


@pytest.mark.parametrize("spec, name", [
    ("openai:text-embedding-3-small", "openai:text-embedding-3-small"),
    ("openai-compatible:http://127.0.0.1:8080/v1:nomic-embed", "openai-compatible:nomic-embed"),
    ("local:minilm", "local:minilm"),
    ("st:/models/e5", "st:/models/e5"),
    ("hashing", "hashing"),
])
def test_embedder_specs(spec, name):
    assert parse_spec(spec, embedder=True).name == name


@pytest.mark.parametrize("spec", ["gpt-4o", "", "ollama:llama3", "local:gpt2", "openai:", "hashing",
                                  "openai-compatible:llama3", "openai-compatible:http://localhost:8000/v1"])
def test_bad_lm_specs_list_the_valid_forms(spec):
    with pytest.raises(SpecError) as info:
        build_lm(spec)
    message = str(info.value)
    assert isinstance(info.value, IgftError) and "\n" not in message
    assert "openai-compatible:" in message and ("local:smollm2" in message or "valid forms" in message)


@pytest.mark.parametrize("spec", ["scripted", "local:smollm2", "minilm", "hf:x"])
def test_bad_embedder_specs(spec):
    with pytest.raises(SpecError, match="local:minilm"):
        build_embedder(spec)


def test_composition_is_metered_cassette_with_a_lazy_backend(tmp_path):
    lm = build_lm("scripted", mode="record", cassette=tmp_path / "c.jsonl", script=lambda r: "hi")
    assert isinstance(lm, MeteredLM) and isinstance(lm.inner, CassetteLM)
    assert lm.model == "scripted" and lm.inner._inner is None  # nothing built before the first miss
    ask(lm, "x")
    assert lm.inner._inner is not None


def test_replay_never_builds_a_model_even_for_heavy_specs(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cassette = tmp_path / "c.jsonl"
    for spec in ["openai:gpt-4o", "local:smollm2", "hf:/does/not/exist"]:
        lm = build_lm(spec, mode="replay", cassette=cassette)
        assert lm.model == spec
        assert lm.inner._inner is None
    build_embedder("local:minilm", mode="replay", cassette=cassette)
    build_embedder("openai:text-embedding-3-small", mode="replay", cassette=cassette)


def test_cassette_key_uses_the_model_name_not_the_url(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cassette = tmp_path / "c.jsonl"
    # Write the recording through the scripted backend under the name an openai-compatible spec uses.
    recorder = CassetteLM(lambda: __import__("igft.llm").llm.ScriptedLM(lambda r: "recorded"), cassette, "record",
                          model="openai-compatible:llama3")
    ask(recorder, "hello")
    for url in ["http://localhost:8000/v1", "https://gpu-box.internal:9999/v1"]:
        lm = build_lm(f"openai-compatible:{url}:llama3", mode="replay", cassette=cassette)
        assert ask(lm, "hello").text == "recorded"
    record = json.loads(cassette.read_text())
    assert record["model"] == "openai-compatible:llama3"
