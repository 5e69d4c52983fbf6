"""The local backends on the real bundled models (SmolLM2-135M-Instruct, all-MiniLM-L6-v2)."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from igft.llm import CassetteLM, CompletionRequest, ask, build_embedder, build_lm

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # On a shared 2-core machine, two OpenMP threads per process fighting other jobs run ~10x slower
    # than one (measured here: 40-token forward 1.1 s vs 11 s under load); restore afterwards.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def smollm2(one_torch_thread):
    return build_lm("local:smollm2")


def test_smollm2_answers_a_short_chat_request(smollm2):
    completion = ask(smollm2, "What is the capital of France? Answer in one word.", max_tokens=20)
    assert "paris" in completion.text.lower()
    assert completion.model == "local:smollm2" and not completion.cached
    assert 0 < completion.completion_tokens <= 20 and completion.prompt_tokens > 10
    # Greedy decoding is deterministic.
    assert ask(smollm2, "What is the capital of France? Answer in one word.", max_tokens=20).text == completion.text
    assert smollm2.meter.snapshot()["live_calls"] == 2


def test_sampling_is_seeded_and_stop_strings_cut(smollm2):
    def sample(seed):
        return smollm2.complete(CompletionRequest.from_prompt("Write a short greeting.", temperature=1.0,
                                                              max_tokens=8, seed=seed)).text

    first = sample(7)
    assert sample(7) == first
    assert sample(8) != first  # the seed really drives sampling
    prompt = "Count from 1 to 10, separated by commas."
    counted = smollm2.complete(CompletionRequest.from_prompt(prompt, max_tokens=15))
    stopped = smollm2.complete(CompletionRequest.from_prompt(prompt, max_tokens=15, stop=("4",)))
    assert "4" in counted.text and "4" not in stopped.text
    assert counted.text.startswith(stopped.text.rstrip(", "))


def test_generation_is_thread_safe(smollm2):
    # Sampled requests seed the global torch RNG: without the generate lock, parallel calls would
    # interleave their random draws and differ from the sequential answers.
    requests = [CompletionRequest.from_prompt(f"Say the word {w}.", temperature=1.0, max_tokens=5, seed=i)
                for i, w in enumerate(["apple", "river", "cloud"])]
    sequential = [smollm2.complete(r).text for r in requests]
    with ThreadPoolExecutor(max_workers=3) as pool:
        parallel = list(pool.map(lambda r: smollm2.complete(r).text, requests))
    assert parallel == sequential


def test_record_with_smollm2_then_replay_without_loading(smollm2, tmp_path):
    cassette = tmp_path / "smol.jsonl"
    recorder = CassetteLM(smollm2.inner, cassette, "record")  # reuse the loaded model
    answer = ask(recorder, "Name a colour.", max_tokens=8)
    replay = build_lm("local:smollm2", mode="replay", cassette=cassette)
    assert ask(replay, "Name a colour.", max_tokens=8).text == answer.text
    assert replay.inner._inner is None  # the model was never loaded for the replay
    assert json.loads(cassette.read_text())["model"] == "local:smollm2"


def test_hf_spec_loads_a_peft_adapter_folder_on_its_base(smollm2, tmp_path):
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model

    base = smollm2.inner._model
    torch.manual_seed(0)
    # Random (non-zero) LoRA weights, so an adapter that is really applied changes the output.
    config = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, config)
    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)
    peft_model.unload()  # leave the shared fixture model as it was
    cfg_path = adapter_dir / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = "smollm2"  # igft's alias, resolved to the bundled checkpoint
    cfg_path.write_text(json.dumps(cfg))

    adapted = build_lm(f"hf:{adapter_dir}")
    # The adapter is merged into the base at load (one matmul per projection), so the loaded model
    # is a plain causal LM whose adapted projections differ from the base's.
    merged = adapted.inner._model
    assert not isinstance(merged, PeftModel)
    q_base = base.model.layers[0].self_attn.q_proj.weight
    q_merged = merged.model.layers[0].self_attn.q_proj.weight
    assert not torch.allclose(q_merged.float(), q_base.float())
    k_base = base.model.layers[0].self_attn.k_proj.weight  # not a LoRA target: unchanged
    assert torch.equal(merged.model.layers[0].self_attn.k_proj.weight.float(), k_base.float())
    prompt = "What is the capital of France? Answer in one word."
    assert adapted.model == f"hf:{adapter_dir}"
    assert ask(adapted, prompt, max_tokens=10).text != ask(smollm2, prompt, max_tokens=10).text


def test_hf_spec_with_a_missing_path_is_a_clear_error():
    from igft.llm import LocalModelError

    with pytest.raises(LocalModelError, match="cannot load model") as info:
        build_lm("hf:/no/such/model-folder")
    assert "\n" not in str(info.value)


def test_minilm_embeds_similar_texts_closer():
    embedder = build_embedder("local:minilm")
    vectors = embedder.embed(["Where is my parcel?", "My package has not arrived yet.",
                              "I want to change my password."])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] and sims[0, 1] > sims[1, 2]
    # Batching does not change a row.
    np.testing.assert_allclose(embedder.embed(["I want to change my password."])[0], vectors[2], atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)
