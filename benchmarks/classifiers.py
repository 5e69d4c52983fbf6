"""Compare intent classifiers side by side on task CSVs: accuracy, macro F1, p50/p95 latency, examples/s.

    python benchmarks/classifiers.py                         # the three toy tasks, tfidf + embeddings
    python benchmarks/classifiers.py --task my.csv --methods tfidf,embeddings,head,generative \
        --llm-steps 30 --max-train 200
    python benchmarks/classifiers.py --methods prompt --lm openai:gpt-4o-mini --shots 5
    python benchmarks/classifiers.py --task clinc150 [--quick] [--results results/classify_clinc150.md]

CLINC150 (`--task clinc150`, data from ../shared/external/clinc150 or $IGFT_EXTERNAL_DATA): every method
trained on `train`, tuned on `val` (the out-of-scope threshold, with `oos_val`), reported on `test` +
`oos_test`; the LLM methods (head, generative, prompt) run on a stated budget (see benchmarks/clinc150.py).

Every method is trained on the same train rows and scored on the same test rows of each task (the
split column, else the seeded split). A majority-class row is printed as the floor. Timings are
wall-clock on this machine and only comparable within one run.
"""
from __future__ import annotations

import os

# OpenMP threads that spin while waiting make torch 50-150x slower on a CPU shared with other jobs
# (measured here: one MiniLM query 1480 ms spinning vs 9 ms passive, 2 threads); set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import sys
from collections import Counter
from pathlib import Path

from igft.classify.evaluate import comparison_table, evaluate_classifier, score_predictions
from igft.classify.run import train_classifier
from igft.classify.task import load_task
from igft.resources import dummy_data_dir

TOY_TASKS = ["hospitality_requests.csv", "german_tickets.csv", "dialogue_initiative.csv"]


def majority_row(task, train, test) -> dict:
    """Always answer each field's most frequent training label (timing is zero by construction)."""
    guess = {name: Counter(train[name]).most_common(1)[0][0] for name in task.field_names}
    scores = score_predictions(task.schema, task.targets(test), [dict(guess) for _ in range(len(test))])
    return {"method": "majority", **scores, "latency_p50_ms": 0.0, "latency_p95_ms": 0.0, "examples_per_s": float("inf")}


def options_for(method: str, args: argparse.Namespace) -> dict:
    if method in ("generative", "head"):
        return {"max_steps": args.llm_steps, "batch_size": args.batch_size, "model": args.model}
    if method == "prompt":
        return {"lm": args.lm, "shots": args.shots, "mode": args.mode, "cassette": args.cassette}
    return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", action="append", help="task CSV (repeatable; default: the toy tasks)")
    parser.add_argument("--methods", help="comma list of tfidf,embeddings,encoder,head,generative,prompt "
                        "(default: tfidf,embeddings; clinc150: all six)")
    parser.add_argument("--model", default="smollm2", help="base model of the head / generative classifiers")
    parser.add_argument("--llm-steps", type=int, default=20, help="optimizer steps of the head / generative classifiers")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-train", type=int, help="cap on training rows for every method")
    parser.add_argument("--max-test", type=int, help="cap on test rows")
    parser.add_argument("--latency-samples", type=int, default=20, help="single-example calls timed per method")
    parser.add_argument("--lm", default="local:smollm2", help="prompt baseline: LLM spec")
    parser.add_argument("--shots", type=int, default=0)
    parser.add_argument("--mode", default="live", choices=["live", "record", "replay"])
    parser.add_argument("--cassette")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("IGFT_THREADS", "2")), help="torch threads")
    parser.add_argument("--quick", action="store_true", help="clinc150: 10 intents, few rows, tiny LLM budgets (CI)")
    parser.add_argument("--results", help="clinc150: also write this markdown results file")
    parser.add_argument("--encoder-epochs", type=float, default=1.0, help="clinc150: encoder fine-tuning epochs")
    parser.add_argument("--encoder-lr", type=float, default=2e-4, help="clinc150: encoder learning rate (heads: the config's)")
    parser.add_argument("--append", action="store_true", help="clinc150: add this run's section to --results instead of replacing it")
    parser.add_argument("--llm-train-per-intent", type=int, default=2, help="clinc150: training rows per intent for head / generative")
    parser.add_argument("--llm-test", type=int, default=45, help="clinc150: test rows (spread over the intents) for head / generative")
    parser.add_argument("--llm-oos-test", type=int, default=50, help="clinc150: oos_test rows for the LLM methods")
    parser.add_argument("--prompt-test", type=int, default=8, help="clinc150: test rows (spread over the intents) for the prompt baseline")
    parser.add_argument("--llm-val", type=int, default=300, help="clinc150: val rows (spread over the intents) tuning the LLM methods' oos threshold")
    parser.add_argument("--llm-oos-val", type=int, default=100, help="clinc150: oos_val rows tuning the LLM methods' oos threshold")
    parser.add_argument("--llm-lr", type=float, default=2e-4, help="clinc150: learning rate of the head / generative classifiers")
    parser.add_argument("--head-freeze-base", action="store_true", help="clinc150: head trains its score head only (frozen base)")
    parser.add_argument("--generative-no-taxonomy", action="store_true", help="clinc150: generative prompt without the label list")
    parser.add_argument("--prompt-shortlist", type=int, default=0, help="clinc150: prompt lists only the N MiniLM-nearest intents (0 = all)")
    parser.add_argument("--prompt-shortlist-per-label", type=int, default=20, help="clinc150: training texts per intent in the shortlist centroids")
    parser.add_argument("--prompt-max-tokens", type=int, default=64, help="clinc150: prompt baseline answer length cap")
    parser.add_argument("--no-threshold", default="", help="clinc150: comma list of methods whose oos threshold is skipped (cost)")
    args = parser.parse_args(argv)
    if args.task == ["clinc150"]:
        from clinc150 import run_clinc150  # benchmarks/clinc150.py, beside this script

        return run_clinc150(args, argv)

    import torch

    torch.set_num_threads(args.threads)
    tasks = args.task or [str(dummy_data_dir() / "classify" / name) for name in TOY_TASKS]
    methods = [m.strip() for m in (args.methods or "tfidf,embeddings").split(",") if m.strip()]
    for path in tasks:
        task = load_task(path)
        parts = task.split(seed=0)
        test = parts["test"] if args.max_test is None else parts["test"].head(args.max_test)
        train = parts["train"] if args.max_train is None else parts["train"].head(args.max_train)
        rows = [majority_row(task, train, test)]
        for method in methods:
            clf, _ = train_classifier(task, method, options=options_for(method, args), max_train=args.max_train)
            rows.append(evaluate_classifier(clf, task.texts(test), task.targets(test), latency_samples=args.latency_samples))
        fields = ", ".join(f"{f.name} ({len(f.labels)} labels)" for f in task.fields)
        print(f"\n## {Path(path).name}: {len(train)} train / {len(test)} test rows; fields: {fields}")
        if len(task.fields) > 1:
            print("accuracy = all-fields exact match; macro_F1 = mean over fields")
        print(comparison_table(rows))
        if len(task.fields) > 1:
            for r in rows:
                print(f"  {r['method']}: " + ", ".join(f"{k} acc {v['accuracy']:.3f}" for k, v in r["per_field"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
