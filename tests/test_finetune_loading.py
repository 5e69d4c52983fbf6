"""Backend choice (QLoRA / Unsloth / fp32), LoRA config, training config and chat template; CPU-only logic."""
from __future__ import annotations

import pytest

from igft.errors import IgftError
from igft.finetune.config import FinetuneConfig, add_config_arguments, config_from_args
from igft.finetune.model_loading import DEFAULT_TARGET_MODULES, ModelLoadError, make_lora_config, select_backend


@pytest.mark.parametrize("quantize, backend, cuda, bnb, unsloth, kind, device", [
    ("auto", "auto", True, True, True, "qlora", "cuda"),     # Unsloth installed is not Unsloth asked for
    ("auto", "unsloth", True, True, True, "unsloth", "cuda"),
    ("auto", "auto", True, True, False, "qlora", "cuda"),
    ("4bit", "hf", True, True, True, "qlora", "cuda"),
    ("auto", "auto", True, False, False, "full", "cuda"),
    ("none", "auto", True, True, True, "full", "cuda"),
    ("auto", "auto", False, True, True, "full", "cpu"),   # CPU: plain LoRA in fp32, even with bitsandbytes installed
    ("4bit", "auto", False, True, False, "qlora", "cpu"),  # bitsandbytes >= 0.47 runs NF4 on x86 CPUs
    ("none", "auto", False, False, False, "full", "cpu"),
])
def test_select_backend(quantize, backend, cuda, bnb, unsloth, kind, device):
    b = select_backend(quantize, backend=backend, cuda=cuda, bitsandbytes=bnb, unsloth=unsloth, capability=(8, 0))
    assert (b.kind, b.device) == (kind, device)
    assert b.dtype == ("bfloat16" if cuda else "float32")


@pytest.mark.parametrize("capability, dtype", [((7, 5), "float16"), ((7, 0), "float16"), ((8, 0), "bfloat16"),
                                               ((8, 9), "bfloat16"), ((9, 0), "bfloat16")])
def test_bf16_only_from_compute_capability_8(capability, dtype):
    from igft.finetune.trainer_args import mixed_precision

    assert select_backend("auto", cuda=True, bitsandbytes=True, capability=capability).dtype == dtype
    flags = mixed_precision("auto", cuda=True, capability=capability)
    assert flags == {"bf16": dtype == "bfloat16", "fp16": dtype == "float16"}
    assert mixed_precision("auto", cuda=False) == {"bf16": False, "fp16": False}
    if capability < (8, 0):
        with pytest.raises(IgftError, match="compute capability >= 8.0"):
            mixed_precision("bf16", cuda=True, capability=capability)


def test_select_backend_errors_name_the_fix():
    with pytest.raises(ModelLoadError, match="pip install 'bitsandbytes"):
        select_backend("4bit", cuda=False, bitsandbytes=False, unsloth=False)
    with pytest.raises(ModelLoadError, match="auto, 4bit, none"):
        select_backend("8bit", cuda=False, bitsandbytes=False, unsloth=False)
    with pytest.raises(ModelLoadError, match="pip install unsloth"):
        select_backend("auto", backend="unsloth", cuda=True, unsloth=False)
    with pytest.raises(ModelLoadError, match="needs a CUDA GPU"):
        select_backend("auto", backend="unsloth", cuda=False, unsloth=True)


def test_device_map_follows_the_local_process_index(monkeypatch):
    from igft.finetune.model_loading import device_map_for_process

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert device_map_for_process() == {"": 0}
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert device_map_for_process() == {"": 3}
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # FSDP / ZeRO-3 shard the weights: no device map
    assert device_map_for_process() is None
    from igft.finetune.model_loading import bnb_config
    import torch
    assert bnb_config("bfloat16").bnb_4bit_quant_storage == torch.bfloat16


def test_bnb_config_is_nf4_with_double_quantisation():
    from igft.finetune.model_loading import bnb_config
    cfg = bnb_config("bfloat16")
    assert cfg.load_in_4bit and cfg.bnb_4bit_quant_type == "nf4" and cfg.bnb_4bit_use_double_quant


def test_make_lora_config():
    cfg = make_lora_config(r=8, alpha=16, dropout=0.1, use_rslora=True)
    assert (cfg.r, cfg.lora_alpha, cfg.lora_dropout, cfg.use_rslora) == (8, 16, 0.1, True)
    assert set(cfg.target_modules) == set(DEFAULT_TARGET_MODULES) and cfg.task_type == "CAUSAL_LM"
    assert set(make_lora_config(target_modules="q_proj, v_proj").target_modules) == {"q_proj", "v_proj"}
    assert make_lora_config(target_modules="all-linear").target_modules == "all-linear"
    assert make_lora_config(task_type="SEQ_CLS", modules_to_save=["score"]).task_type == "SEQ_CLS"
    with pytest.raises(IgftError):
        make_lora_config(r=0)


def test_config_yaml_and_cli_precedence(tmp_path):
    import argparse
    path = tmp_path / "ft.yaml"
    FinetuneConfig(lora_r=4, max_steps=7, format="response").save(path)
    assert FinetuneConfig.from_yaml(path).lora_r == 4
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(["--max-steps", "3", "--use-rslora", "--learning-rate", "1e-3"])
    cfg = config_from_args(args, str(path))
    assert (cfg.lora_r, cfg.max_steps, cfg.use_rslora, cfg.learning_rate, cfg.format) == (4, 3, True, 1e-3, "response")
    path.write_text("lora_rank: 3\n")
    with pytest.raises(IgftError, match="unknown fine-tuning config key"):
        FinetuneConfig.from_yaml(path)
    with pytest.raises(IgftError, match="format must be one of"):
        FinetuneConfig(format="chat").validate()


def test_vllm_requests_are_built_without_vllm(tmp_path):
    from igft.finetune.generate import GenerationSettings, build_vllm_requests

    class Tok:
        eos_token = "<|im_end|>"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            assert not tokenize and add_generation_prompt
            return "|".join(m["content"] for m in messages) + "|A:"

    req = build_vllm_requests(Tok(), [[{"role": "user", "content": "hi"}]], GenerationSettings(max_new_tokens=9),
                              adapter=tmp_path)
    assert req["prompts"] == ["hi|A:"]
    assert req["sampling"] == {"max_tokens": 9, "temperature": 0.0, "top_p": 1.0, "seed": 0, "stop": ["<|im_end|>"]}
    assert req["lora"] == {"lora_name": "igft", "lora_int_id": 1, "lora_path": str(tmp_path.resolve())}
    assert build_vllm_requests(Tok(), [], GenerationSettings())["lora"] is None


def test_unsloth_models_get_lora_through_unsloth(monkeypatch):
    import sys
    import types

    from igft.finetune.model_loading import apply_lora

    calls = []
    fake = types.ModuleType("unsloth")
    fake.FastLanguageModel = types.SimpleNamespace(get_peft_model=lambda model, **kw: calls.append(kw) or "peft-by-unsloth")
    monkeypatch.setitem(sys.modules, "unsloth", fake)
    model = types.SimpleNamespace(_igft_backend="unsloth")
    lora = make_lora_config(r=8, alpha=16, dropout=0.0, target_modules="q_proj,v_proj")
    assert apply_lora(model, lora) == "peft-by-unsloth"
    assert calls[0]["r"] == 8 and calls[0]["lora_alpha"] == 16 and set(calls[0]["target_modules"]) == {"q_proj", "v_proj"}
