"""The vLLM backend against a small fake `vllm` module (vLLM has no CPU wheels).

Asserts what the real engine would be asked: ONE engine for many batches, built from the base model's
folder (the HF model is never loaded), LoRA enabled with the adapter's rank, the memory and length
options, the adapter served through LoRARequest, and structured outputs for the generative classifier.
"""
from __future__ import annotations

import json
import sys
import types

import pytest

from igft.finetune.generate import GenerationSettings, generate_predictions, vllm_lora_rank


class FakeVLLM:
    """Records engines, generate calls and the objects passed to them."""

    def __init__(self):
        self.engines, self.calls = [], []
        fake = self

        class LLM:
            def __init__(self, **kwargs):
                fake.engines.append(kwargs)

            def generate(self, prompts, sampling, lora_request=None, use_tqdm=True):
                fake.calls.append({"prompts": list(prompts), "sampling": sampling, "lora": lora_request})
                answer = (sampling.kwargs["structured_outputs"].kwargs.get("choice") or ['{"x": "y"}'])[0] \
                    if "structured_outputs" in sampling.kwargs else "Intents:\n- greet\nResponses:\nHello!"
                out = types.SimpleNamespace(text=answer, token_ids=[1, 2, 3])
                return [types.SimpleNamespace(outputs=[out]) for _ in prompts]

        class Params:
            def __init__(self, **kwargs):
                self.kwargs = kwargs

        class LoRARequest:
            def __init__(self, name, int_id, path):
                self.name, self.int_id, self.path = name, int_id, path

        self.vllm = types.ModuleType("vllm")
        self.vllm.LLM, self.vllm.SamplingParams = LLM, type("SamplingParams", (Params,), {})
        self.sampling_params = types.ModuleType("vllm.sampling_params")
        self.sampling_params.StructuredOutputsParams = type("StructuredOutputsParams", (Params,), {})
        self.lora = types.ModuleType("vllm.lora")
        self.lora_request = types.ModuleType("vllm.lora.request")
        self.lora_request.LoRARequest = LoRARequest


@pytest.fixture
def fake_vllm(monkeypatch):
    fake = FakeVLLM()
    for name, module in {"vllm": fake.vllm, "vllm.sampling_params": fake.sampling_params, "vllm.lora": fake.lora,
                         "vllm.lora.request": fake.lora_request}.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr("igft.finetune.generate.vllm_available", lambda: True)

    def no_hf_model(*args, **kwargs):
        raise AssertionError("the vllm backend must not load the HF model")

    monkeypatch.setattr("igft.finetune.model_loading.load_causal_lm", no_hf_model)
    return fake


@pytest.fixture
def adapter(tmp_path):
    """A minimal LoRA adapter folder of rank 12 for a tiny Llama (tokenizer saved beside it)."""
    from transformers import AutoTokenizer

    from tests.tiny_models import tiny_model

    base = tiny_model("llama")
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"r": 12, "base_model_name_or_path": str(base),
                                                            "peft_type": "LORA"}))
    (folder / "igft.json").write_text(json.dumps({"format": "intent+response", "base_model": str(base)}))
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return folder, base


def _samples(n):
    return [{"id": f"{i}:1", "conversation_number": i, "turn": 1, "format": "intent+response", "reference": "Hi",
             "gold_intents": ["greet"], "prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": f"q{i}"}]}
            for i in range(n)]


def test_one_engine_for_many_batches_with_the_adapter(fake_vllm, adapter, tmp_path):
    folder, base = adapter
    settings = GenerationSettings(max_new_tokens=20, batch_size=2, gpu_memory_utilization=0.55, max_model_len=1024, seed=3)
    stats = {}
    records = generate_predictions(_samples(7), tmp_path / "pred.jsonl", adapter=folder, backend="vllm",
                                   settings=settings, stats=stats)
    assert len(records) == 7 and not any(r["malformed"] for r in records)
    assert len(fake_vllm.engines) == 1, "one engine per run"
    assert len(fake_vllm.calls) == 4  # batches of 2, 2, 2, 1
    engine = fake_vllm.engines[0]
    assert engine["model"] == str(base) and engine["enable_lora"] is True
    assert engine["max_lora_rank"] == 16  # rank 12 rounded up to vLLM's next supported rank
    assert engine["gpu_memory_utilization"] == 0.55 and engine["max_model_len"] == 1024 and engine["seed"] == 3
    for call in fake_vllm.calls:
        assert call["lora"].path == str(folder.resolve()) and call["lora"].int_id == 1
        assert call["sampling"].kwargs["max_tokens"] == 20 and call["sampling"].kwargs["temperature"] == 0.0
        assert call["sampling"].kwargs["stop"] == ["<|eot_id|>"]
        assert all(p.startswith("<|begin_of_text|><|start_header_id|>system") for p in call["prompts"])
    assert stats["new_tokens"] == 21 and stats["tokens_per_s"] > 0


def test_base_model_engine_has_no_lora(fake_vllm, tmp_path):
    from tests.tiny_models import tiny_model

    generate_predictions(_samples(3), tmp_path / "pred.jsonl", model_spec=str(tiny_model("llama")), backend="vllm",
                         settings=GenerationSettings(batch_size=8))
    assert len(fake_vllm.engines) == 1 and "enable_lora" not in fake_vllm.engines[0]
    assert fake_vllm.calls[0]["lora"] is None


def test_lora_rank_rounding():
    assert [vllm_lora_rank(r) for r in (1, 8, 9, 64, 65)] == [8, 8, 16, 64, 128]
    with pytest.raises(Exception, match="merge the adapter"):
        vllm_lora_rank(1024)


def test_generative_classifier_uses_structured_outputs(fake_vllm, monkeypatch):
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from igft.classify.generative import GenerativeClassifier, GenerativeConfig
    from igft.classify.task import FieldSpec, TaskSchema
    from igft.finetune.chat_template import prepare_inference_tokenizer
    from igft.finetune.model_loading import make_lora_config
    from tests.tiny_models import tiny_model

    path = tiny_model("llama")
    schema = TaskSchema(fields=[FieldSpec("intent", ["late_checkout", "room_change"])])
    clf = GenerativeClassifier(schema, GenerativeConfig(model=str(path), inference_backend="vllm", lora_r=4,
                                                        gpu_memory_utilization=0.5))
    torch.manual_seed(0)
    clf.tokenizer = AutoTokenizer.from_pretrained(path)
    prepare_inference_tokenizer(clf.tokenizer)
    clf.model = get_peft_model(AutoModelForCausalLM.from_pretrained(path), make_lora_config(r=4, alpha=8))
    clf._prepare_encoding()
    preds = clf.predict(["can I stay until 2pm?", "another room please", "wifi?"])
    clf.predict(["second call"])
    assert len(fake_vllm.engines) == 1 and fake_vllm.engines[0]["enable_lora"] is True
    assert fake_vllm.engines[0]["max_lora_rank"] == 8
    structured = fake_vllm.calls[0]["sampling"].kwargs["structured_outputs"].kwargs
    assert structured == {"choice": ['{"intent": "late_checkout"}', '{"intent": "room_change"}']}
    assert preds == [{"intent": "late_checkout"}] * 3
    two_fields = GenerativeClassifier(TaskSchema(fields=[FieldSpec("a", ["x", "y"]), FieldSpec("b", ["p"])]),
                                      GenerativeConfig())
    schema_request = two_fields.structured_request()["json"]
    assert schema_request["properties"]["a"]["enum"] == ["x", "y"] and schema_request["required"] == ["a", "b"]
