"""Fine-tune the bundled SmolLM2 (LoRA) into an offline GIFA labeler, on GIFA's own prompts.

Samples come from igft.gifa.training_samples (the requests GIFA sends, with the gold `N. intent`
lines as answers); training uses igft.finetune's own pieces (load_causal_lm, the training chat
template, LoRA config, make_trainer = TRL SFTTrainer with loss on the answer only). Whole services
are held out for validation. Writes into --out:
  adapter/            PEFT adapter + tokenizer (training template) + igft.json
  (--ship DIR)        the same adapter as it ships: fp16 weights, configs, no tokenizer
  samples_train.jsonl, samples_validation.jsonl, sample_stats.json
  train_log.jsonl, loss.png, metrics.json

    PYTHONPATH=. HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=2 python benchmarks/train_offline_labeler.py \\
        --max-conversations-per-service 6 --window-messages 12 --synthetic-runs 8 --synthetic-messages 120 \\
        --synthetic-intents 40 --extra-sources --max-seq-len 1100 --max-steps 120 --max-minutes 88 \\
        --grad-accum 4 --learning-rate 7e-4 --lora-r 16 \\
        --lora-targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj --eval-steps 30 \\
        --max-validation-samples 8 --threads 2 --base-dtype fp32 --out runs/ol4 --ship runs/ol4/ship

is the run behind the shipped igft/models/igft_labeler/ (75 min on 2 CPU cores; --ship writes the fp16
copy without tokenizer; results/offline_labeler.md has its figures). Label with a run's adapter:
igft label --llm hf:runs/ol4/adapter ...; with the shipped one: igft label --llm local:igft-labeler ...
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path

from igft.errors import IgftError
from igft.gifa import GifaConfig
from igft.gifa.training_samples import SampleConfig, build_labeler_samples, load_sources

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCES = REPO_ROOT.parent / "shared" / "external" / "sgd" / "train"
DEFAULT_VALIDATION = ("Hotels_3", "Music_2")  # two services whose domains also occur in training
# igft's own toy data: customer-support conversations whose gold intents are named in the style the
# paper's toy data uses (GPT-4o-written, one purpose per message); none of its messages is evaluated.
DEFAULT_EXTRA = REPO_ROOT / "dummy_data" / "toy_conversations.csv"
LORA_TARGETS = "q_proj,k_proj,v_proj,o_proj"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sources", nargs="+", default=[str(DEFAULT_SOURCES)],
                   help="conversation CSV/JSONL files or folders of them, with gold intents (default: SGD train)")
    p.add_argument("--extra-sources", nargs="*", default=[str(DEFAULT_EXTRA)],
                   help="more training sources, used whole (no per-service cap); default: igft's toy conversations")
    p.add_argument("--extra-repeat", type=int, default=1, help="each extra-source sample appears this many times")
    p.add_argument("--synthetic-runs", type=int, default=0,
                   help="add this many seeded igft.synthetic datasets, each its own GIFA run (descriptive "
                        "action_object intents for both speakers; seeds --seed+1000 ...)")
    p.add_argument("--synthetic-messages", type=int, default=120, help="messages per synthetic run")
    p.add_argument("--synthetic-intents", type=int, default=40, help="intents per synthetic run")
    p.add_argument("--validation-services", default=",".join(DEFAULT_VALIDATION),
                   help="comma-separated source names held out whole for validation ('' = none)")
    p.add_argument("--max-conversations-per-service", type=int, default=10, help="first N conversations per source")
    p.add_argument("--window-messages", type=int, default=8,
                   help="cut longer conversations into windows of this many messages (0 = whole conversations)")
    p.add_argument("--max-train-samples", type=int, default=None, help="seeded subsample of the training samples")
    p.add_argument("--max-validation-samples", type=int, default=24, help="seeded subsample of the validation samples")
    p.add_argument("--embedder", default="local:minilm", help="embedder spec for retrieval (as igft label --embedder)")
    p.add_argument("--top-k", type=int, default=GifaConfig.top_k, help="GIFA top_k of the prompts")
    p.add_argument("--model", default="smollm2", help="base model: 'smollm2' (bundled), a local folder or an HF id")
    p.add_argument("--max-steps", type=int, default=150)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--grad-accum", type=int, default=4)
    p.add_argument("--learning-rate", type=float, default=3e-4)
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--lora-targets", default=LORA_TARGETS, help="comma-separated projections that get LoRA")
    p.add_argument("--warmup-ratio", type=float, default=0.05)
    p.add_argument("--max-seq-len", type=int, default=768, help="samples longer than this (tokens) are dropped and counted")
    p.add_argument("--eval-steps", type=int, default=50)
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop training after this many minutes of training wall time (a shared CPU's speed varies); "
                        "the adapter is saved as it is then")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--base-dtype", choices=("auto", "bf16", "fp32"), default="auto",
                   help="dtype of the frozen base weights (LoRA weights stay fp32). bf16 is about 3x faster on CPUs "
                        "with AMX, about 13x slower where bf16 is emulated (AVX2); auto picks bf16 only where the "
                        "CPU runs it natively (torch's oneDNN bf16 check) or on a CUDA GPU with bf16")
    p.add_argument("--init-adapter", default=None,
                   help="continue training this LoRA adapter folder (e.g. igft/models/igft_labeler) instead of a "
                        "fresh one; its r, alpha and target modules are kept, --lora-r/--lora-targets are ignored")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: leave the other core to other jobs)")
    p.add_argument("--out", default=str(REPO_ROOT / "runs" / "offline_labeler"))
    p.add_argument("--ship", default=None,
                   help="also write the compact adapter (fp16 safetensors + config, no tokenizer) into this folder, "
                        "e.g. igft/models/igft_labeler")
    return p.parse_args(argv)


def build_samples(args: argparse.Namespace):
    from igft.llm.factory import build_embedder

    sources = load_sources(args.sources)
    held = tuple(s for s in args.validation_services.split(",") if s.strip())
    window = args.window_messages or None
    cut = SampleConfig(window_messages=window,
                       max_conversations_per_source=args.max_conversations_per_service,
                       validation_sources=held, seed=args.seed)
    embedder = build_embedder(args.embedder)
    built = build_labeler_samples(sources, embedder, GifaConfig(top_k=args.top_k), cut)

    def add_whole(runs, stat: str, repeat: int = 1) -> None:
        # Sources used whole (no per-source cap, none held out), appended to the training samples.
        more = build_labeler_samples(runs, embedder, GifaConfig(top_k=args.top_k),
                                     SampleConfig(window_messages=window, seed=args.seed))
        built.train.extend(more.train * max(1, repeat))
        built.stats["train_sources"] += more.stats["train_sources"]
        built.stats[stat] = len(more.train)

    if args.extra_sources:
        add_whole(load_sources(args.extra_sources), "n_extra_samples", args.extra_repeat)
    if args.synthetic_runs:
        from igft.synthetic import synthetic_dataset

        seeds = [args.seed + 1000 + i for i in range(args.synthetic_runs)]
        add_whole({f"synthetic_{seed}": synthetic_dataset(args.synthetic_messages, args.synthetic_intents, seed=seed)
                   for seed in seeds}, "n_synthetic_samples")
    if args.extra_sources or args.synthetic_runs:
        built.stats["n_train_samples"] = len(built.train)
        built.stats["n_train_messages"] = sum(s["n_messages"] for s in built.train)
        built.stats["n_train_intents"] = len({i for s in built.train for i in s["gold"]})
    return built


def fit(samples: list[dict], tokenizer, max_seq_len: int, limit: int | None, seed: int) -> tuple[list[dict], int]:
    """Samples within max_seq_len tokens (as the trainer renders them), seeded subsample to `limit`."""
    from igft.finetune.sft_data import count_tokens

    kept = []
    for s in samples:
        n = count_tokens(tokenizer, s["messages"])
        if n <= max_seq_len:
            kept.append({**s, "n_tokens": n})
    dropped = len(samples) - len(kept)
    if limit is not None and len(kept) > limit:
        kept = random.Random(seed).sample(kept, limit)
    return kept, dropped


def time_limit(minutes: float):
    """A TrainerCallback that ends training once `minutes` of wall time have passed since it began."""
    from transformers import TrainerCallback

    class TimeLimit(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if time.perf_counter() - self.started > 60 * minutes:
                logging.info("time limit of %.1f min reached at step %d; stopping", minutes, state.global_step)
                control.should_training_stop = True
            return control

    return TimeLimit()


def base_dtype(choice: str) -> str:
    """'bf16' or 'fp32' for --base-dtype: 'auto' asks torch whether this machine has bf16 hardware."""
    if choice != "auto":
        return choice
    import torch

    if torch.cuda.is_available():
        native = torch.cuda.is_bf16_supported()
    else:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    logging.info("--base-dtype auto: %s (native bf16: %s)", "bf16" if native else "fp32", native)
    return "bf16" if native else "fp32"


def init_sources(init_adapter: str | None) -> list[str] | None:
    """The training sources a warm-started adapter inherits (from its igft.json), None without one."""
    meta = Path(init_adapter) / "igft.json" if init_adapter else None
    if meta is None or not meta.is_file():
        return None
    previous = json.loads(meta.read_text(encoding="utf-8"))
    return sorted(set(previous.get("train_sources", [])) | set(previous.get("init_adapter_train_sources") or []))


def ship_adapter(adapter: Path, target: Path) -> int:
    """Copy the adapter as it ships in the package: fp16 weights, configs, no tokenizer (the bundled
    base model's tokenizer renders the same ChatML prompt). Returns the bytes written."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    target.mkdir(parents=True, exist_ok=True)
    weights = {k: v.to(torch.float16).contiguous() for k, v in load_file(str(adapter / "adapter_model.safetensors")).items()}
    save_file(weights, str(target / "adapter_model.safetensors"), metadata={"format": "pt"})
    for name in ("adapter_config.json", "igft.json"):
        if (adapter / name).exists():
            shutil.copyfile(adapter / name, target / name)
    return sum(f.stat().st_size for f in target.iterdir() if f.is_file())


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if args.init_adapter and not (Path(args.init_adapter) / "adapter_config.json").is_file():
        raise IgftError(f"--init-adapter {args.init_adapter} has no adapter_config.json: pass a LoRA adapter "
                        "folder, e.g. igft/models/igft_labeler or runs/X/adapter")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from igft.finetune.chat_template import (install_training_template, output_modules_to_save,
                                             trainable_token_indices)
    from igft.finetune.config import FinetuneConfig
    from igft.finetune.model_loading import apply_lora, load_causal_lm, make_lora_config
    from igft.finetune.sft_data import write_jsonl
    from igft.finetune.train import ADAPTER_META, make_trainer, plot_loss
    from igft.llm.local_models import resolve_model_path
    from transformers import set_seed

    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    built = build_samples(args)
    config = FinetuneConfig(model=args.model, format="response", max_steps=args.max_steps,
                            per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=args.batch_size,
                            gradient_accumulation_steps=args.grad_accum, learning_rate=args.learning_rate,
                            lora_r=args.lora_r, lora_alpha=2 * args.lora_r, max_seq_len=args.max_seq_len,
                            target_modules=args.lora_targets, warmup_ratio=args.warmup_ratio, resume=False,
                            eval_steps=args.eval_steps, save_steps=args.eval_steps, logging_steps=1,
                            seed=args.seed, output_dir=str(out)).validate()
    set_seed(args.seed)
    model, tokenizer = load_causal_lm(config.model, quantize="none", max_seq_len=config.max_seq_len)
    plan = install_training_template(tokenizer)
    if plan.added_tokens:
        model.resize_token_embeddings(len(tokenizer))
    if base_dtype(args.base_dtype) == "bf16":
        # The frozen base in bf16, the LoRA weights in fp32 (PEFT upcasts adapters): on this CPU (AMX)
        # a 480-token forward+backward took 3.2 s instead of 10 s, same loss to 3 decimals.
        model = model.to(torch.bfloat16)
    train_samples, train_dropped = fit(built.train, tokenizer, args.max_seq_len, args.max_train_samples, args.seed)
    val_samples, val_dropped = fit(built.validation, tokenizer, args.max_seq_len, args.max_validation_samples, args.seed)
    if not train_samples:
        raise IgftError(f"no training sample fits --max-seq-len {args.max_seq_len}; raise it or lower --window-messages")
    stats = {**built.stats, "n_train_used": len(train_samples), "n_validation_used": len(val_samples),
             "n_train_dropped_overlength": train_dropped, "n_validation_dropped_overlength": val_dropped,
             "train_tokens": sum(s["n_tokens"] for s in train_samples), "chat_template": plan.source,
             "sample_seconds": round(time.perf_counter() - started, 1), "args": vars(args)}
    write_jsonl(train_samples, out / "samples_train.jsonl")
    write_jsonl(val_samples, out / "samples_validation.jsonl")
    (out / "sample_stats.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
    logging.info("%d training / %d validation samples (%d / %d over %d tokens dropped)", len(train_samples),
                 len(val_samples), train_dropped, val_dropped, args.max_seq_len)

    callbacks = [time_limit(args.max_minutes)] if args.max_minutes else None
    if args.init_adapter:
        from peft import PeftModel

        # A warm start: the adapter's own LoRA config, its weights upcast to the base's dtype by PEFT.
        peft_model = PeftModel.from_pretrained(model, args.init_adapter, is_trainable=True)
        logging.info("continuing from adapter %s", args.init_adapter)
    else:
        lora = make_lora_config(config.lora_r, config.lora_alpha, config.lora_dropout, config.use_rslora,
                                config.target_modules, modules_to_save=output_modules_to_save(model, plan.added_tokens),
                                trainable_token_indices=trainable_token_indices(model, tokenizer, plan.added_tokens))
        peft_model = apply_lora(model, lora)
    trainer = make_trainer(peft_model, tokenizer, train_samples, val_samples, config, out / "checkpoints",
                           extra_callbacks=callbacks)
    train_started = time.perf_counter()
    result = trainer.train()
    metrics = {**result.metrics, "train_wall_seconds": round(time.perf_counter() - train_started, 1)}
    if val_samples:
        metrics.update(trainer.evaluate())
    log = [{k: v for k, v in r.items() if isinstance(v, (int, float))} for r in trainer.state.log_history]
    with open(out / "train_log.jsonl", "w", encoding="utf-8") as f:
        for record in log:
            f.write(json.dumps(record) + "\n")
    plot_loss(log, out / "loss.png")

    adapter = out / "adapter"
    trainer.model.save_pretrained(adapter)
    tokenizer.save_pretrained(adapter)
    # PEFT records the machine-specific cache folder of the bundled model; name the alias instead.
    if resolve_model_path(config.model) != config.model:
        adapter_config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
        adapter_config["base_model_name_or_path"] = config.model
        (adapter / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2, sort_keys=True), encoding="utf-8")
    (adapter / ADAPTER_META).write_text(json.dumps({"format": "gifa-labeler", "base_model": config.model,
                                                    "max_seq_len": config.max_seq_len, "chat_template": plan.source,
                                                    "gifa_top_k": args.top_k, "window_messages": args.window_messages,
                                                    "init_adapter": args.init_adapter,
                                                    "init_adapter_train_sources": init_sources(args.init_adapter),
                                                    "train_sources": stats["train_sources"]}, indent=2),
                                        encoding="utf-8")
    if args.ship:
        metrics["shipped_bytes"] = ship_adapter(adapter, Path(args.ship))
    metrics["total_wall_seconds"] = round(time.perf_counter() - started, 1)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    print(json.dumps({"adapter": str(adapter), **{k: metrics[k] for k in metrics if "loss" in k or "seconds" in k}}, indent=2))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except IgftError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
