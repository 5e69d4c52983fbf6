"""`--quantize 4bit` executed on this CPU through bitsandbytes' CPU backend (NF4 weights, LoRA on top).

Tiny random Llama, a few steps on one repeated batch: the loss falls and the LoRA weights change, for
Stage 2 (TRL SFTTrainer) and the head classifier (transformers Trainer).
"""
from __future__ import annotations

import pytest

pytest.importorskip("bitsandbytes")

from tests.tiny_models import tiny_model  # noqa: E402

pytestmark = pytest.mark.slow


def _lora_b_norm(model) -> float:
    return float(sum(p.detach().float().norm() for n, p in model.named_parameters() if "lora_B" in n))


def test_stage2_qlora_on_cpu(tmp_path):
    import pandas as pd
    from safetensors.torch import load_file

    from igft.finetune.config import FinetuneConfig
    from igft.finetune.train import train

    rows = [{"conversation_number": 0, "conversation": "customer: Where is my order?", "index": 0, "intent": "ask_status"},
            {"conversation_number": 0, "conversation": "assistant: It ships today.", "index": 1, "intent": "give_status"}]
    data = tmp_path / "one.csv"
    pd.DataFrame(rows).to_csv(data, index=False)
    cfg = FinetuneConfig(model=str(tiny_model("llama")), data=str(data), quantize="4bit", max_steps=6,
                         per_device_train_batch_size=1, learning_rate=2e-2, warmup_ratio=0.0, lora_r=8, lora_alpha=16,
                         lora_dropout=0.0, max_seq_len=128, val_fraction=0.0, eval_steps=0, save_steps=100,
                         output_dir=str(tmp_path / "run"), system_prompt="S")
    result = train(cfg)
    losses = [r["loss"] for r in result.log if "loss" in r]
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.05, losses
    tensors = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    assert sum(float(t.norm()) for n, t in tensors.items() if "lora_B" in n) > 0  # B starts at zero


def test_head_classifier_qlora_on_cpu():
    import bitsandbytes as bnb

    from igft.classify.head import HeadClassifier, HeadConfig
    from igft.classify.task import FieldSpec, TaskSchema

    schema = TaskSchema(fields=[FieldSpec("label", ["no", "yes"])])
    clf = HeadClassifier(schema, HeadConfig(model=str(tiny_model("llama")), quantize="4bit", max_steps=6, batch_size=2,
                                            learning_rate=2e-2, warmup=0.0, lora_r=8, lora_dropout=0.0, eval_steps=0,
                                            max_length=16))
    stats = clf.fit(["where is my order", "thanks a lot"], [{"label": "no"}, {"label": "yes"}])
    assert stats["steps"] == 6 and stats["losses"][-1] < stats["losses"][0], stats["losses"]
    assert _lora_b_norm(clf.model) > 0
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in clf.model.modules())  # the base really is 4-bit
    assert not isinstance(clf.model.base_model.model.score.original_module, bnb.nn.Linear4bit)  # the head is not
    assert [p["label"] for p in clf.predict(["where is my order", "thanks a lot"])] == ["no", "yes"]
