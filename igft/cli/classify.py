"""`igft classify train|eval|export-openai|openai-job`: thin wrappers over igft.classify."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from igft.cli.finetune import add_synthetic_argument
from igft.errors import IgftError

METHOD_CHOICES = ["generative", "head", "tfidf", "embeddings", "prompt", "encoder"]
LLM_METHODS = {"generative", "head"}
# shortcut flag -> (config key, methods it applies to)
SHORTCUTS = {
    "model": ("model", {"generative", "head"}),
    "max_steps": ("max_steps", {"generative", "head"}),
    "epochs": ("epochs", {"generative", "head"}),
    "batch_size": ("batch_size", {"generative", "head"}),
    "grad_accum": ("grad_accum", {"generative", "head"}),
    "learning_rate": ("learning_rate", {"generative", "head"}),
    "lr_scheduler": ("lr_scheduler", {"generative", "head"}),
    "warmup": ("warmup", {"generative", "head"}),
    "eval_steps": ("eval_steps", {"generative", "head"}),
    "early_stopping_patience": ("early_stopping_patience", {"generative", "head"}),
    "report_to": ("report_to", {"generative", "head"}),
    "precision": ("precision", {"generative", "head"}),
    "backend": ("backend", {"generative", "head"}),
    "inference_backend": ("inference_backend", {"generative"}),
    "quantize": ("quantize", {"generative", "head"}),
    "decoding": ("decoding", {"generative"}),
    "class_weights": ("class_weights", {"head"}),
    "lm": ("lm", {"prompt"}),
    "shots": ("shots", {"prompt"}),
    "base_url": ("base_url", {"prompt"}),
    "embedder": ("embedder", {"embeddings"}),
    "mode": ("mode", {"prompt", "embeddings"}),
    "cassette": ("cassette", {"prompt", "embeddings"}),
}


def _parse_params(items: list[str]) -> dict:
    options = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise IgftError(f"--param {item!r} is not KEY=VALUE; e.g. --param lora_r=16")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def _train(args: argparse.Namespace) -> int:
    import dataclasses

    from igft.classify.run import train_classifier
    from igft.classify.task import load_task
    from igft.curate.marker import select_synthetic_rows

    task = load_task(args.task, args.schema)
    task = dataclasses.replace(task, frame=select_synthetic_rows(task.frame, args.synthetic, task.path))
    options = _parse_params(args.param)
    for flag, (key, methods) in SHORTCUTS.items():
        value = getattr(args, flag, None)
        if value is not None:
            if args.method not in methods:
                raise IgftError(f"--{flag.replace('_', '-')} does not apply to --method {args.method} "
                                f"(it is for: {', '.join(sorted(methods))})")
            options[key] = value
    if args.method in LLM_METHODS:
        # checkpoints beside the model: rerunning the same command resumes from the last one
        options.setdefault("checkpoint_dir", str(Path(args.out) / "checkpoints"))
        if options.get("backend") == "unsloth" and args.method == "head":
            raise IgftError("--backend unsloth applies to --method generative only (Unsloth has no classification heads)")
    main_process = _quiet_other_ranks()
    # under accelerate launch every rank trains; only rank 0 writes the model folder
    _, stats = train_classifier(task, args.method, options=options, seed=args.seed,
                                out_dir=args.out if main_process else None, max_train=args.max_train)
    if main_process:
        print(json.dumps({"out": str(args.out), "method": args.method,
                          **{k: v for k, v in stats.items() if k not in ("class_weights", "losses", "eval_losses")}}))
    return 0


def _quiet_other_ranks() -> bool:
    """Under `accelerate launch`, only rank 0 prints and logs; True on the main process."""
    from igft.cli.finetune import _quiet_other_ranks as quiet
    return quiet()


def _eval(args: argparse.Namespace) -> int:
    from igft.classify.evaluate import comparison_table, headline
    from igft.classify.run import evaluate_saved

    result = evaluate_saved(args.model, args.task, schema=args.schema, out_dir=args.out,
                            latency_samples=args.latency_samples, max_test=args.max_test, synthetic=args.synthetic)
    if args.json:
        print(json.dumps(headline(result), ensure_ascii=False))
    else:
        print(comparison_table([result]))
        for name, figures in result["per_field"].items():
            print(f"{name}: accuracy {figures['accuracy']:.3f}, macro F1 {figures['macro_f1']:.3f}")
        if args.out:
            print(f"confusion matrices, predictions.csv and metrics.json in {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from igft.classify.openai_ft import export_jsonl, validate_jsonl
    from igft.classify.task import load_task

    task = load_task(args.task, args.schema)
    paths = export_jsonl(task, task.split(seed=args.seed), args.out)
    for name, path in paths.items():
        report = validate_jsonl(path, training=name == "train")
        status = "ok" if report.ok else f"{len(report.errors)} error(s): {report.errors[0]}"
        print(f"{name}: {path} ({report.n_examples} examples, ~{report.total_tokens} tokens) {status}")
    print(f"next: igft classify openai-job --train {paths['train']}"
          + (f" --validation {paths['validation']}" if "validation" in paths else "") + f" --out {Path(args.out) / 'job'} --dry-run")
    return 0


def _openai_job(args: argparse.Namespace) -> int:
    from igft.classify.openai_ft import plan_job, run_job

    plan = plan_job(args.train, args.validation, model=args.base_model, n_epochs=args.epochs,
                    price_per_million=args.price_per_million)
    print(plan.describe())
    if args.dry_run:
        print("dry run: nothing uploaded")
        return 0

    def show(state: dict) -> None:
        print(f"job {state['job_id']}: {state['status']}", file=sys.stderr)

    state = run_job(plan, args.out, base_url=args.base_url, suffix=args.suffix, seed=args.seed,
                    poll_interval=args.poll_interval, timeout=args.timeout, on_status=show)
    print(json.dumps({k: state.get(k) for k in ("job_id", "status", "fine_tuned_model", "trained_tokens", "result_files")}))
    if args.eval_task:
        from igft.classify.baselines import PromptClassifier, PromptConfig
        from igft.classify.evaluate import headline, evaluate_classifier
        from igft.classify.run import test_rows
        from igft.classify.task import load_task

        task = load_task(args.eval_task, args.schema)
        clf = PromptClassifier(task.schema, PromptConfig(lm=f"openai:{state['fine_tuned_model']}", base_url=args.base_url,
                                                         mode=args.mode, cassette=args.cassette))
        rows = test_rows(task, seed=args.seed)
        result = evaluate_classifier(clf, task.texts(rows), task.targets(rows), latency_samples=0)
        print(json.dumps(headline(result), ensure_ascii=False))
    return 0


METHOD_DEFAULT = " (default: the method's config default)"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("classify", help="intent classifiers: train, eval, OpenAI fine-tuning export and jobs")
    sub = parser.add_subparsers(dest="classify_command", metavar="ACTION", required=True)

    train = sub.add_parser("train", help="train a classifier on a task CSV and save it")
    train.add_argument("--task", required=True, help="task CSV (text + label columns; a split column is honoured)")
    train.add_argument("--schema", help="schema JSON/YAML (default: CSV_STEM.schema.json beside the CSV, or text+intent)")
    train.add_argument("--method", required=True, choices=METHOD_CHOICES)
    train.add_argument("--out", required=True, help="model folder to write")
    train.add_argument("--seed", type=int, default=0, help="seed for the split (when no split column) and training")
    train.add_argument("--max-train", type=int, help="use only the first N training rows (quick runs; default: all)")
    add_synthetic_argument(train, "rows", "in the task CSV", "; the seeded split is made over the kept rows")
    train.add_argument("--param", action="append", metavar="KEY=VALUE", help="any config option of the method (repeatable; default: the method's config defaults)")
    train.add_argument("--model", help="generative/head: base model (smollm2, folder, HF id)" + METHOD_DEFAULT)
    train.add_argument("--max-steps", type=int, help="generative/head: optimizer steps" + METHOD_DEFAULT)
    train.add_argument("--epochs", type=float, help="generative/head: epochs" + METHOD_DEFAULT)
    train.add_argument("--batch-size", type=int, help="generative/head: rows per device per micro-batch" + METHOD_DEFAULT)
    train.add_argument("--grad-accum", type=int, help="generative/head: micro-batches per optimizer step" + METHOD_DEFAULT)
    train.add_argument("--learning-rate", type=float, help="generative/head: peak learning rate" + METHOD_DEFAULT)
    train.add_argument("--lr-scheduler", choices=["cosine", "linear", "constant", "constant_with_warmup", "cosine_with_restarts"],
                       help="generative/head: schedule after warmup" + METHOD_DEFAULT)
    train.add_argument("--warmup", type=float, help="generative/head: warmup fraction (< 1) or steps" + METHOD_DEFAULT)
    train.add_argument("--eval-steps", type=int, help="generative/head: validation loss every N steps (0 = never)" + METHOD_DEFAULT)
    train.add_argument("--early-stopping-patience", type=int, help="generative/head: evaluations without improvement before stopping" + METHOD_DEFAULT)
    train.add_argument("--report-to", help="generative/head: none | tensorboard | wandb | mlflow" + METHOD_DEFAULT)
    train.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"], help="generative/head: mixed precision" + METHOD_DEFAULT)
    train.add_argument("--backend", choices=["auto", "hf", "unsloth"], help="generative: unsloth only when asked" + METHOD_DEFAULT)
    train.add_argument("--inference-backend", choices=["hf", "vllm"], help="generative: decode with transformers or vLLM" + METHOD_DEFAULT)
    train.add_argument("--quantize", choices=["auto", "4bit", "none"], help="generative/head: QLoRA 4-bit or not" + METHOD_DEFAULT)
    train.add_argument("--decoding", choices=["constrained", "score"], help="generative: how labels are decoded" + METHOD_DEFAULT)
    train.add_argument("--class-weights", choices=["balanced", "none"], help="head: loss weighting" + METHOD_DEFAULT)
    train.add_argument("--lm", help="prompt: LLM spec (openai:gpt-4o-mini, local:smollm2, ...)" + METHOD_DEFAULT)
    train.add_argument("--shots", type=int, help="prompt: few-shot examples (0 = zero-shot)" + METHOD_DEFAULT)
    train.add_argument("--base-url", help="prompt: OpenAI-compatible endpoint for openai:MODEL specs" + METHOD_DEFAULT)
    train.add_argument("--embedder", help="embeddings: embedder spec (local:minilm, ...)" + METHOD_DEFAULT)
    train.add_argument("--mode", choices=["live", "record", "replay"], help="prompt/embeddings: client mode" + METHOD_DEFAULT)
    train.add_argument("--cassette", help="prompt/embeddings: cassette file" + METHOD_DEFAULT)
    train.set_defaults(func=_train)

    ev = sub.add_parser("eval", help="score a saved classifier on a task's test rows")
    ev.add_argument("--model", required=True, help="model folder written by classify train")
    ev.add_argument("--task", required=True, help="task CSV")
    ev.add_argument("--schema", help="schema file (default: beside the CSV, else the model's)")
    ev.add_argument("--out", help="folder for confusion-matrix PNGs, predictions.csv, metrics.json (default: print only)")
    ev.add_argument("--json", action="store_true", help='print {"accuracy", "macro_f1", "per_field", ...} as JSON')
    ev.add_argument("--latency-samples", type=int, default=20, help="single-example calls timed for p50/p95")
    ev.add_argument("--max-test", type=int, help="score only the first N test rows (default: all)")
    add_synthetic_argument(ev, "rows", "in the task CSV", "; use the choice the model was trained with")
    ev.set_defaults(func=_eval)

    ex = sub.add_parser("export-openai", help="write chat-format train/validation JSONL for OpenAI fine-tuning")
    ex.add_argument("--task", required=True, help="task CSV")
    ex.add_argument("--schema", help="schema file (default: CSV_STEM.schema.json beside the CSV, or text+intent)")
    ex.add_argument("--out", required=True, help="folder for train.jsonl / validation.jsonl / test.jsonl")
    ex.add_argument("--seed", type=int, default=0, help="seed of the split when the CSV has no split column")
    ex.set_defaults(func=_export)

    job = sub.add_parser("openai-job", help="validate, upload, create and poll an OpenAI fine-tuning job")
    job.add_argument("--train", required=True, help="train.jsonl from export-openai")
    job.add_argument("--validation", help="validation.jsonl (default: none)")
    job.add_argument("--base-model", default="gpt-4o-mini-2024-07-18", help="model to fine-tune")
    job.add_argument("--out", default="runs/openai_job", help="folder for job.json, events.jsonl, result files")
    job.add_argument("--base-url", help="OpenAI-compatible API base URL (default: OpenAI)")
    job.add_argument("--epochs", type=int, help="n_epochs (default: the API's auto rule)")
    job.add_argument("--suffix", help="suffix of the fine-tuned model name (default: none)")
    job.add_argument("--seed", type=int, default=0, help="seed sent with the job and of the --eval-task split")
    job.add_argument("--price-per-million", type=float, help="USD per 1M training tokens (default: known list price)")
    job.add_argument("--poll-interval", type=float, default=30.0, help="seconds between status polls")
    job.add_argument("--timeout", type=float, default=24 * 3600, help="give up polling after this many seconds")
    job.add_argument("--dry-run", action="store_true", help="print the plan and estimated cost; send nothing")
    job.add_argument("--eval-task", help="after success, score the fine-tuned model on this task CSV's test rows (default: no scoring)")
    job.add_argument("--schema", help="schema for --eval-task (default: beside its CSV, or text+intent)")
    job.add_argument("--mode", default="live", choices=["live", "record", "replay"], help="client mode for --eval-task")
    job.add_argument("--cassette", help="cassette for --eval-task (default: none)")
    job.set_defaults(func=_openai_job)
