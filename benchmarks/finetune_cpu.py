"""LoRA SFT throughput and memory of SmolLM2-135M on this CPU: padded vs padding-free (packed) batches.

Each mode runs in its own subprocess (so peak RSS is per mode) on the same toy conversations
(intent+response), same steps and batch size; tokens/s counts real (non-pad) tokens as TRL logs them.

    python benchmarks/finetune_cpu.py [--steps 4] [--batch-size 4] [--max-seq-len 384] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def run_mode(mode: str, steps: int, batch_size: int, max_seq_len: int) -> dict:
    from peft import get_peft_model

    from igft.data import load_conversations
    from igft.finetune.chat_template import prepare_tokenizer
    from igft.finetune.config import FinetuneConfig
    from igft.finetune.model_loading import load_causal_lm, make_lora_config
    from igft.finetune.sft_data import build_sft_data
    from igft.finetune.train import make_trainer
    from igft.resources import toy_conversations_path

    cfg = FinetuneConfig(max_steps=steps, per_device_train_batch_size=batch_size, max_seq_len=max_seq_len,
                         padding_free=(mode == "padding-free"), val_fraction=0.0, eval_steps=0, save_steps=10_000,
                         logging_steps=1, seed=0)
    model, tok = load_causal_lm("smollm2", quantize="none")
    prepare_tokenizer(tok)
    data = build_sft_data(load_conversations(toy_conversations_path()), "intent+response", tokenizer=tok,
                          max_seq_len=max_seq_len, val_fraction=0.0)
    model = get_peft_model(model, make_lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout))
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(model, tok, data.train, [], cfg, tmp)
        trainer.args.disable_tqdm = True
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    logs = [r for r in trainer.state.log_history if "num_tokens" in r]
    tokens = logs[-1]["num_tokens"]
    return {"mode": mode, "steps": steps, "seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-seq-len", type=int, default=384)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--mode", choices=["padding", "padding-free"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    if args.mode:  # child process: one mode, one JSON line
        print(json.dumps(run_mode(args.mode, args.steps, args.batch_size, args.max_seq_len)))
        return
    results = []
    for mode in ("padding", "padding-free"):
        cmd = [sys.executable, __file__, "--mode", mode, "--steps", str(args.steps), "--batch-size", str(args.batch_size),
               "--max-seq-len", str(args.max_seq_len)] + (["--threads", str(args.threads)] if args.threads else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        if proc.returncode:
            sys.exit(f"{mode} run failed:\n{proc.stderr[-3000:]}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"LoRA SFT, SmolLM2-135M-Instruct, CPU, {args.steps} steps x batch {args.batch_size}, max_seq_len {args.max_seq_len}")
    print(f"{'mode':<14}{'tokens':>10}{'seconds':>10}{'tokens/s':>10}{'peak RSS MB':>13}")
    for r in results:
        print(f"{r['mode']:<14}{r['tokens']:>10.0f}{r['seconds']:>10.1f}{r['tokens_per_s']:>10.1f}{r['peak_rss_mb']:>13.0f}")
    pad, free = results
    print(f"padding-free / padding: tokens/s x{free['tokens_per_s'] / pad['tokens_per_s']:.2f}, "
          f"peak RSS x{free['peak_rss_mb'] / pad['peak_rss_mb']:.2f}")
    print("note: with packing a step holds batch_size rows of max_seq_len packed tokens, so it sees more tokens per step.")


if __name__ == "__main__":
    main()
