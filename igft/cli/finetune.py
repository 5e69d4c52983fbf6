"""`igft finetune`, `igft generate`, `igft score`: thin wrappers over igft.finetune."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _quiet_other_ranks() -> bool:
    """Under `accelerate launch`, only rank 0 prints and logs; True on the main process."""
    import logging

    from igft.finetune.train import is_main_process
    if is_main_process():
        return True
    logging.getLogger().setLevel(logging.ERROR)
    try:
        import datasets
        datasets.disable_progress_bars()
    except ImportError:
        pass
    for name in ("transformers", "trl", "peft", "igft", "accelerate", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return False


def add_synthetic_argument(parser: argparse.ArgumentParser, unit: str, what: str, note: str = "") -> None:
    """`--synthetic include|exclude|only`: which messages (or task rows) marked synthetic are used."""
    from igft.curate.marker import SYNTHETIC_CHOICES

    parser.add_argument("--synthetic", choices=SYNTHETIC_CHOICES, default="include",
                        help=f"{unit} marked synthetic (column synthetic=1, e.g. from igft curate synth) {what}: "
                             f"include them, exclude them, or use only them{note} (default: include)")


def select_synthetic_or_fail(dataset, choice: str):
    """The dataset after `--synthetic CHOICE`; one clear line when nothing is left."""
    from igft.curate.marker import select_synthetic
    from igft.errors import IgftError

    kept = select_synthetic(dataset, choice)
    if not kept.n_messages:
        raise IgftError(f"--synthetic {choice} leaves no messages in {dataset.source}; "
                        "use --synthetic include, or data with rows marked synthetic=1 (igft curate synth)")
    return kept


def _finetune(args: argparse.Namespace) -> int:
    from igft.finetune.config import config_from_args
    from igft.finetune.train import load_training_dataset, train

    if args.out:
        args.output_dir = args.out
    config = config_from_args(args, args.config)
    main_process = _quiet_other_ranks()
    dataset = select_synthetic_or_fail(load_training_dataset(config), args.synthetic)
    result = train(config, dataset)
    if not main_process:
        return 0
    train_losses = [r["loss"] for r in result.log if "loss" in r]
    print(f"adapter: {result.adapter_dir}")
    print(f"samples: {result.data_stats['n_train_samples']} train / {result.data_stats['n_validation_samples']} validation; "
          f"over max_seq_len: {result.data_stats['n_overlength']} (trimmed {result.data_stats['n_trimmed']}, "
          f"dropped {result.data_stats['n_dropped']})")
    if train_losses:
        print(f"train loss: first {train_losses[0]:.4f} -> last {train_losses[-1]:.4f}")
    if "eval_loss" in result.metrics:
        print(f"validation loss: {result.metrics['eval_loss']:.4f}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from igft.data import load_conversations
    from igft.finetune.generate import GenerationSettings, evaluation_samples, generate_predictions
    from igft.finetune.train import adapter_meta

    meta = adapter_meta(args.adapter) if args.adapter else {}
    fmt = args.format or meta.get("format") or "response"
    system_prompt = args.system_prompt if args.system_prompt is not None else meta.get("system_prompt")
    if args.data:
        dataset = load_conversations(args.data)
    else:  # the same default as igft finetune: the toy conversations with gold intents
        from igft.resources import toy_conversations_path
        dataset = load_conversations(toy_conversations_path())
    dataset = select_synthetic_or_fail(dataset, args.synthetic)
    if args.conversations:
        dataset = dataset.subset([int(x) for x in args.conversations.split(",") if x.strip()])
    samples = evaluation_samples(dataset, fmt, system_prompt, args.max_samples)
    if args.batch_size <= 0:
        from igft.errors import IgftError
        raise IgftError(f"--batch-size must be a positive integer, got {args.batch_size}")
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                                  batch_size=args.batch_size, seed=args.seed,
                                  gpu_memory_utilization=args.gpu_memory_utilization, max_model_len=args.max_model_len)
    stats: dict = {}
    records = generate_predictions(samples, args.out, model_spec=args.model, adapter=args.adapter,
                                   backend=args.backend, settings=settings, stats=stats)
    speed = (f"; {stats['new_tokens']} tokens generated at {stats['tokens_per_s']:.1f} tokens/s ({args.backend})"
             if stats.get("tokens_per_s") else "")
    print(f"{len(records)} predictions in {args.out} ({sum(r['malformed'] for r in records)} malformed){speed}")
    return 0


def _score(args: argparse.Namespace) -> int:
    from igft.finetune.generate import read_predictions
    from igft.finetune.scores import score_predictions

    records = read_predictions(args.pred)
    scores = score_predictions(records, bertscore=not args.no_bertscore, bertscore_model=args.bertscore_model,
                               bertscore_layers=args.bertscore_layers, cosine=not args.no_cosine)
    if args.json:
        print(json.dumps(scores))
    else:
        for k, v in scores.items():
            print(f"{k:>22}: {v:.4f}" if isinstance(v, float) else f"{k:>22}: {v}")
    if args.out:
        Path(args.out).write_text(json.dumps(scores, indent=2), encoding="utf-8")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from igft.finetune.config import add_config_arguments

    p = subparsers.add_parser("finetune", help="LoRA/QLoRA fine-tuning on labeled conversations (Stage 2)",
                              description="Fine-tune a causal LM with LoRA on response or intent+response targets. "
                                          "Without --data: the toy conversations with gold intents.")
    p.add_argument("--config", help="YAML file with FinetuneConfig keys (CLI flags override it; default: none, the built-in defaults)")
    p.add_argument("--out", help="output folder (same as --output-dir; default: --output-dir's)")
    add_config_arguments(p)
    p.add_argument("--batch-size", dest="per_device_train_batch_size", type=int, default=None,
                   help="samples per device per step (same as --per-device-train-batch-size; default: its default)")
    p.add_argument("--grad-accum", dest="gradient_accumulation_steps", type=int, default=None,
                   help="micro-batches per optimizer step (same as --gradient-accumulation-steps; default: its default)")
    add_synthetic_argument(p, "messages", "in the training data")
    p.set_defaults(func=_finetune)

    g = subparsers.add_parser("generate", help="generate replies for held-out conversations (optionally with an adapter)")
    g.add_argument("--model", default=None, help="base model: 'smollm2', a folder or an HF id (default: the adapter's base)")
    g.add_argument("--adapter", default=None, help="adapter/ folder written by igft finetune (default: none, the base model alone)")
    g.add_argument("--data", default=None,
                   help="conversations CSV/JSONL; one sample per assistant turn (default: the toy conversations)")
    g.add_argument("--out", required=True, help="predictions JSONL (appended; rerun to resume)")
    g.add_argument("--format", choices=["response", "intent+response"], default=None,
                   help="target format (default: the adapter's, else response)")
    g.add_argument("--system-prompt", default=None, help="'plain', 'two-step' or a literal prompt (default: the adapter's)")
    g.add_argument("--conversations", default=None, help="comma-separated conversation numbers to use (default: all)")
    g.add_argument("--max-samples", type=int, default=None, help="only the first N samples (default: all)")
    add_synthetic_argument(g, "messages", "among the conversations replied to")
    g.add_argument("--max-new-tokens", type=int, default=128, help="(default: 128)")
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default: 0)")
    g.add_argument("--top-p", type=float, default=1.0, help="(default: 1.0)")
    g.add_argument("--batch-size", type=int, default=8, help="prompts per generate call (default: 8)")
    g.add_argument("--seed", type=int, default=0, help="(default: 0)")
    g.add_argument("--backend", choices=["hf", "vllm"], default="hf",
                   help="hf (transformers) or vllm (one engine per run; needs vLLM and a GPU) (default: hf)")
    g.add_argument("--gpu-memory-utilization", type=float, default=0.9,
                   help="vllm: share of GPU memory the engine may use (default: 0.9)")
    g.add_argument("--max-model-len", type=int, default=None,
                   help="vllm: context length to reserve KV cache for (default: the model's)")
    g.set_defaults(func=_generate)

    s = subparsers.add_parser("score", help="BLEU, ROUGE, METEOR, BERTScore, cosine and intent F1 of predictions")
    s.add_argument("--pred", required=True, help="predictions JSONL written by igft generate")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--out", default=None, help="also write the scores to this JSON file (default: print only)")
    s.add_argument("--bertscore-model", default=None, help="a second BERTScore model you have locally (path or name; default: none, the bundled MiniLM only)")
    s.add_argument("--bertscore-layers", type=int, default=None, help="layer of --bertscore-model to use (default: bert-score's choice for that model)")
    s.add_argument("--no-bertscore", action="store_true", help="skip BERTScore (faster)")
    s.add_argument("--no-cosine", action="store_true", help="skip the embedding cosine similarity")
    s.set_defaults(func=_score)


if __name__ == "__main__":  # pragma: no cover
    from igft.cli import main
    sys.exit(main(["finetune", *sys.argv[1:]]))
