"""Real LoRA training runs of the bundled SmolLM2-135M on a tiny overfit set, in both formats.

Kept small (few steps, short samples) so the whole file stays around a minute on an idle 2-core CPU.
Checks: the adapter weights change, the loss falls, eval loss is logged, checkpoints resume, the output
folder holds adapter/ config.yaml train_log.jsonl loss.png, and generation + scoring run on the result.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from igft.cli import main
from igft.finetune.config import FinetuneConfig
from igft.finetune.generate import evaluation_samples, generate_predictions, GenerationSettings
from igft.finetune.scores import score_predictions
from igft.finetune.train import read_log, train
from igft.data import load_conversations

pytestmark = pytest.mark.slow

SYSTEM = "Support agent."
CONVERSATIONS = [
    [("customer: Where is my order?", "ask_order_status"), ("assistant: It ships today.", "give_status"),
     ("customer: Thanks!", "thank"), ("assistant: You are welcome.", "close")],
    [("customer: I want a refund.", "request_refund"), ("assistant: Refund done.", "issue_refund"),
     ("customer: Great, bye.", "thank")],
    [("customer: Hello", "greet"), ("assistant: Hi! How can I help?", "greet_back")],
]


@pytest.fixture(scope="module")
def toy_csv(tmp_path_factory):
    rows = [{"conversation_number": c, "conversation": text, "index": i, "intent": intent}
            for c, conv in enumerate(CONVERSATIONS) for i, (text, intent) in enumerate(conv)]
    path = tmp_path_factory.mktemp("data") / "tiny.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _lora_b_norm(adapter_dir) -> float:
    from safetensors.torch import load_file
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    lora_b = [t for name, t in tensors.items() if "lora_B" in name]
    assert lora_b, "the adapter has no LoRA B matrices"
    return float(sum(t.float().norm() for t in lora_b))


def test_intent_response_training_overfits_and_generation_scores_run(toy_csv, tmp_path):
    out = tmp_path / "ir"
    cfg = FinetuneConfig(data=str(toy_csv), format="intent+response", system_prompt=SYSTEM, max_steps=8,
                         per_device_train_batch_size=4, learning_rate=3e-3, warmup_ratio=0.0, lora_r=8,
                         lora_alpha=16, lora_dropout=0.0, max_seq_len=128, val_fraction=0.0, eval_steps=4,
                         save_steps=4, output_dir=str(out), seed=0)
    # Overfit set: all three conversations are trained on (no validation split in this run).
    result = train(cfg)
    for name in ("adapter/adapter_model.safetensors", "adapter/adapter_config.json", "adapter/igft.json",
                 "config.yaml", "train_log.jsonl", "loss.png", "data_stats.json", "train.jsonl"):
        assert (out / name).exists(), name
    assert FinetuneConfig.from_yaml(out / "config.yaml").max_steps == 8
    losses = [r["loss"] for r in result.log if "loss" in r]
    assert [r["step"] for r in result.log if "loss" in r] == list(range(1, 9))
    assert losses[-1] < 0.6 * losses[0], losses
    # LoRA B starts at zero: a non-zero B means the optimizer changed the adapter.
    assert _lora_b_norm(result.adapter_dir) > 0
    assert result.data_stats["n_train_samples"] == 4 and result.data_stats["n_overlength"] == 0
    # The adapter names the bundled base by its alias, not by this machine's cache path.
    assert json.loads((result.adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"] == "smollm2"

    samples = evaluation_samples(load_conversations(toy_csv), "intent+response", SYSTEM)
    records = generate_predictions(samples, tmp_path / "pred.jsonl", adapter=result.adapter_dir,
                                   settings=GenerationSettings(max_new_tokens=24, batch_size=4))
    assert len(records) == 4 and all(isinstance(r["output"], str) for r in records)
    # Trained to stop on its own training prompts, the model emits the intent+response layout.
    assert sum(r["output"].startswith("Intents:") for r in records) >= 2, [r["output"] for r in records]
    scores = score_predictions(records)
    assert {"bleu", "rougeL", "bertscore_f1", "intent_f1", "n_malformed"} <= set(scores)
    # Resuming the finished run is a no-op: same records, generation skips what is already written.
    again = generate_predictions(samples, tmp_path / "pred.jsonl", adapter=result.adapter_dir)
    assert again == records


def test_response_training_through_the_cli_with_eval_and_resume(toy_csv, tmp_path, capsys):
    out = tmp_path / "resp"
    common = ["finetune", "--data", str(toy_csv), "--format", "response", "--system-prompt", SYSTEM,
              "--per-device-train-batch-size", "2", "--learning-rate", "3e-3", "--warmup-ratio", "0",
              "--lora-r", "4", "--lora-alpha", "8", "--lora-dropout", "0", "--target-modules", "q_proj,v_proj",
              "--max-seq-len", "128", "--val-fraction", "0.34", "--eval-steps", "2", "--save-steps", "2",
              "--out", str(out)]
    assert main(common + ["--max-steps", "4"]) == 0
    first = read_log(out / "train_log.jsonl")
    assert [r["step"] for r in first if "eval_loss" in r][:2] == [2, 4]
    assert (out / "checkpoints" / "checkpoint-4").is_dir()
    # Rerun with more steps: resumes from checkpoint-4 and trains only steps 5-6.
    assert main(common + ["--max-steps", "6"]) == 0
    raw = [json.loads(l) for l in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in raw if "loss" in r] == [1, 2, 3, 4, 5, 6]
    stats = json.loads((out / "data_stats.json").read_text())
    held_out = ",".join(map(str, stats["validation_conversations"]))
    assert stats["n_validation_samples"] >= 1

    pred = tmp_path / "pred.jsonl"
    capsys.readouterr()
    assert main(["generate", "--adapter", str(out / "adapter"), "--data", str(toy_csv), "--conversations", held_out,
                 "--max-new-tokens", "16", "--out", str(pred)]) == 0
    records = [json.loads(l) for l in pred.read_text().splitlines()]
    assert len(records) == stats["n_validation_samples"] and records[0]["format"] == "response"
    capsys.readouterr()
    assert main(["score", "--pred", str(pred), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert {"bleu", "rougeL", "bertscore_f1"} <= set(scores) and "intent_f1" not in scores
    assert 0.0 <= scores["rougeL"] <= 1.0 and -1.0 <= scores["bertscore_f1"] <= 1.0
