#!/usr/bin/env bash
# Makes results/finetune_toy_intent_response.{json,md}: a short LoRA fine-tune of the bundled
# SmolLM2-135M-Instruct on the toy conversations (gold intents, intent+response format), then
# base model vs fine-tuned model on the held-out conversations of the same split.
# Run from the repository root:  bash results/finetune_toy_intent_response.sh   (CPU only, ~30-60 min on 2 shared cores)
set -euo pipefail
OUT=${OUT:-runs/finetune_toy_intent_response}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # the 2 cores here are shared; 1 thread wastes less under contention
mkdir -p "$OUT"
DATA=dummy_data/toy_conversations.csv

# Skipped when the adapter already exists (rerunning the script then only redoes generation leftovers and scoring).
[ -f "$OUT/adapter/adapter_model.safetensors" ] || igft finetune --data "$DATA" --format intent+response --model smollm2 --max-steps 30 \
  --per-device-train-batch-size 2 --learning-rate 5e-4 --warmup-ratio 0.1 --lora-r 16 --lora-alpha 32 \
  --max-seq-len 384 --val-fraction 0.2 --eval-steps 15 --save-steps 15 --seed 0 --out "$OUT"

# The held-out conversations are the validation split the fine-tune wrote down.
HELD_OUT=$(python -c "import json,sys; print(','.join(map(str, json.load(open(sys.argv[1]))['validation_conversations'])))" "$OUT/data_stats.json")

igft generate --model smollm2 --data "$DATA" --conversations "$HELD_OUT" --format intent+response \
  --system-prompt two-step --max-new-tokens 96 --batch-size 8 --out "$OUT/pred_base.jsonl"
igft generate --adapter "$OUT/adapter" --data "$DATA" --conversations "$HELD_OUT" \
  --max-new-tokens 96 --batch-size 8 --out "$OUT/pred_finetuned.jsonl"

igft score --pred "$OUT/pred_base.jsonl" --json --out "$OUT/scores_base.json"
igft score --pred "$OUT/pred_finetuned.jsonl" --json --out "$OUT/scores_finetuned.json"

python - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
base = json.loads((out / "scores_base.json").read_text())
ft = json.loads((out / "scores_finetuned.json").read_text())
stats = json.loads((out / "data_stats.json").read_text())
from igft.finetune.train import read_log
max_steps = 30
log = [r for r in read_log(out / "train_log.jsonl") if r["step"] <= max_steps]
losses = [r["loss"] for r in log if "loss" in r]
evals = sorted({r["step"]: r["eval_loss"] for r in log if "eval_loss" in r}.items())
result = {"command": "bash results/finetune_toy_intent_response.sh", "base": base, "finetuned": ft,
          "train_loss_first": losses[0], "train_loss_last": losses[-1], "eval_loss": evals,
          "held_out_conversations": stats["validation_conversations"], "n_train_samples": stats["n_train_samples"],
          "n_validation_samples": stats["n_validation_samples"]}
pathlib.Path("results/finetune_toy_intent_response.json").write_text(json.dumps(result, indent=2))
keys = ["bleu", "rouge1", "rouge2", "rougeL", "meteor", "bertscore_f1", "embedding_cosine",
        "intent_precision", "intent_recall", "intent_f1", "intent_exact_match", "n_malformed", "n"]
fmt = lambda v: "unavailable" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))
rows = "\n".join(f"| {k} | {fmt(base.get(k))} | {fmt(ft.get(k))} |" for k in keys)
md = f"""# SmolLM2-135M-Instruct, LoRA fine-tune on the toy conversations (intent+response)

Made by: `bash results/finetune_toy_intent_response.sh` (CPU, 2 shared cores; the exact igft commands are in that script).
Training: 30 steps, batch 2, lr 5e-4 cosine, LoRA r=16 alpha=32 on all attention+MLP projections,
{stats['n_train_samples']} training samples from {stats['n_train_conversations']} conversations (gold intents).
Train loss (assistant tokens) step 1: {losses[0]:.3f}, step {max_steps}: {losses[-1]:.3f}; validation loss by step: {', '.join(f'{s}: {v:.3f}' for s, v in evals)}.
Held-out: {stats['n_validation_samples']} assistant turns of conversations {stats['validation_conversations']}; greedy decoding, 96 new tokens max.

| score | base SmolLM2 (two-step system prompt) | fine-tuned (LoRA) |
|---|---|---|
{rows}

BLEU is sacrebleu corpus BLEU (0-100); ROUGE is rouge-score F1 with stemming; BERTScore uses the bundled
all-MiniLM-L6-v2 (layer 6, no baseline rescaling) and is NOT comparable with published BERTScores;
METEOR is unavailable when NLTK's wordnet data is not installed. A 135M model trained for 30 steps on
~100 samples: these figures show the pipeline working end to end, not the paper's results. Intent F1 is
exact string match with the toy data's gold intent names; malformed = output off the Intents/Responses
layout (mostly: the model did not stop and started another Intents block, whose text is cut from the reply).
"""
pathlib.Path("results/finetune_toy_intent_response.md").write_text(md)
print(md)
PY
