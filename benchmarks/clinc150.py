"""CLINC150 for `benchmarks/classifiers.py --task clinc150`: every method on the same public data.

Protocol (Larson et al., EMNLP 2019, "threshold" variant): train on the 150 in-scope intents of
`train`; tune, on `val` + `oos_val`, a threshold on the top class probability below which a query is
called out-of-scope; report on `test` + `oos_test`:
- in-scope accuracy and macro-F1 of the plain argmax (the figure the paper's "Full" table compares),
- out-of-scope recall and in-scope accuracy when the tuned threshold rejects (methods with
  `predict_proba`; the others get no threshold and show "n/a"),
- p50 / p95 latency of single-query calls and queries/s of batched prediction, on this CPU,
- training wall time.
The LLM methods (head, generative: SmolLM2 + LoRA; prompt: SmolLM2 zero-shot) would take hours here,
so they run on a budget (a few training rows per intent, a few optimizer steps, a subset of the test
rows spread over the intents, a subset of val + oos_val for their threshold), printed in the table's
budget column; their figures are not comparable with the full-data rows. Options that make them fit
(real options of the library methods): `--head-freeze-base` (head: score head only, frozen base),
`--generative-no-taxonomy` (generative: no label list in the prompt, constrained decoding),
`--prompt-shortlist N` (prompt: only the N MiniLM-nearest intents listed; its recall is reported).
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from igft.classify.base import build_classifier
from igft.classify.clinc150 import Clinc150, default_clinc150_path, load_clinc150
from igft.classify.evaluate import evaluate_classifier
from igft.classify.out_of_scope import has_probabilities, threshold_scores, top_predictions, tune_threshold

ALL_METHODS = ("tfidf", "embeddings", "encoder", "head", "generative", "prompt")
LLM_METHODS = ("head", "generative", "prompt")
PUBLISHED = "CLINC150 paper (Larson et al. 2019), BERT, Full setting: in-scope accuracy 0.962"

logger = logging.getLogger("clinc150")


def rows_per_intent(frame: pd.DataFrame, k: int | None) -> pd.DataFrame:
    """The first k rows of each intent (file order), or all rows."""
    return frame if k is None else frame.groupby("intent", sort=False).head(k)


def spread(items: list, n: int | None) -> list:
    """n items evenly spaced over the list (keeps a capped test set spread over all intents)."""
    if n is None or n >= len(items):
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, n)]


def method_options(method: str, args: argparse.Namespace) -> dict:
    if method == "encoder":
        if args.quick:
            return {"max_steps": 6, "batch_size": 16, "logging_steps": 2}
        return {"epochs": args.encoder_epochs, "learning_rate": args.encoder_lr, "logging_steps": 50}
    if method in ("generative", "head"):
        options = {"max_steps": args.llm_steps, "batch_size": args.batch_size, "model": args.model, "eval_steps": 0,
                   "learning_rate": args.llm_lr, "logging_steps": 10}
        if method == "head":
            return {**options, "freeze_base": args.head_freeze_base, "max_length": 64}
        return {**options, "taxonomy_in_prompt": not args.generative_no_taxonomy, "max_text_tokens": 64}
    if method == "prompt":
        return {"lm": args.lm, "shots": args.shots, "mode": args.mode, "cassette": args.cassette,
                "shortlist": args.prompt_shortlist,
                "shortlist_per_label": args.prompt_shortlist_per_label, "max_tokens": args.prompt_max_tokens}
    return {}


def budget_text(method: str, args, n_train: int, n_test: int, n_oos: int) -> str:
    if method in ("head", "generative"):
        variant = ("frozen base, score head only" if args.head_freeze_base else "LoRA") if method == "head" else \
            ("LoRA, no taxonomy in prompt, constrained decoding" if args.generative_no_taxonomy else "LoRA, taxonomy in prompt")
        return (f"BUDGET: {variant}; {n_train} train rows, {args.llm_steps} steps x {args.batch_size}, "
                f"lr {args.llm_lr:g}; {n_test}+{n_oos} test rows")
    if method == "prompt":
        short = (f", shortlist of {args.prompt_shortlist} MiniLM-nearest intents (centroids of "
                 f"{args.prompt_shortlist_per_label} train rows per intent)") if args.prompt_shortlist else ""
        return f"BUDGET: zero-shot {args.lm}" + (f" ({args.shots} shots)" if args.shots else "") + short + \
            f"; {n_test}+{n_oos} test rows"
    if method == "encoder":
        return "full train" + (" (quick: 6 steps)" if args.quick else f", {args.encoder_epochs:g} epoch(s), lr {args.encoder_lr:g}")
    return "full train"


def run_method(method: str, data: Clinc150, args: argparse.Namespace) -> dict:
    task = data.task
    frame = task.frame
    train = frame[frame["split"] == "train"]
    test = frame[frame["split"] == "test"]
    val = frame[frame["split"] == "validation"]
    oos_test, oos_val = data.oos["test"], data.oos["validation"]
    if method in ("head", "generative"):
        train = rows_per_intent(train, args.llm_train_per_intent)
    if method in LLM_METHODS:
        n_test = args.prompt_test if method == "prompt" else args.llm_test
        test = test.iloc[spread(list(range(len(test))), n_test)]
        oos_test = spread(oos_test, args.llm_oos_test)
        val = val.iloc[spread(list(range(len(val))), args.llm_val)]  # threshold tuning rows, spread over the intents
        oos_val = spread(oos_val, args.llm_oos_val)
    logger.warning("%s: %d train, %d test + %d oos_test rows", method, len(train), len(test), len(oos_test))
    clf = build_classifier(method, task.schema, method_options(method, args))
    start = time.perf_counter()
    clf.fit(task.texts(train), task.targets(train))
    train_s = time.perf_counter() - start
    logger.warning("%s trained in %.0f s on %d rows", method, train_s, len(train))
    # single-query latency: fewer timed calls for the LLM methods (each call costs seconds here)
    samples = min(args.latency_samples, 3) if method in LLM_METHODS else args.latency_samples
    result = evaluate_classifier(clf, task.texts(test), task.targets(test), latency_samples=samples)
    no_threshold = {m.strip() for m in (args.no_threshold or "").split(",") if m.strip()}
    probabilities = has_probabilities(clf) and method not in no_threshold
    oos_test = oos_test if probabilities else []  # no threshold to apply: the oos rows are not scored
    result.update({"train_s": train_s, "n_train": len(train), "n_oos_test": len(oos_test),
                   "budget": budget_text(method, args, len(train), len(test), len(oos_test))})
    if getattr(clf, "shortlister", None) is not None:  # the shortlisted prompt can only be right inside its shortlist
        recall = clf.shortlister.recall(task.texts(test), list(test["intent"]), clf.config.shortlist)
        result["budget"] += f"; shortlist recall {recall:.3f}"
    if "unparsed" in result:
        result["budget"] += f"; unparsed answers {result['unparsed']}"
    if probabilities:
        val_pred, val_top = top_predictions(clf, task.texts(val), "intent")
        _, oos_val_top = top_predictions(clf, oos_val, "intent")
        tuned = tune_threshold(val_top, np.array(val_pred) == val["intent"].to_numpy(), oos_val_top)
        test_pred, test_top = top_predictions(clf, task.texts(test), "intent")
        _, oos_top = top_predictions(clf, oos_test, "intent")
        scored = threshold_scores(tuned["threshold"], test_top, np.array(test_pred) == test["intent"].to_numpy(), oos_top)
        result.update({"threshold": tuned["threshold"], "oos_recall": scored["oos_recall"],
                       "in_scope_accuracy_rejecting": scored["in_scope_accuracy"]})
        if method in LLM_METHODS:
            result["budget"] += f"; threshold tuned on {len(val)}+{len(oos_val)} val rows"
    elif has_probabilities(clf):
        result["budget"] += "; threshold not run (--no-threshold)"
    return result


def table(rows: list[dict]) -> str:
    header = ["method", "train rows", "test in/oos", "in-scope acc", "macro-F1", "oos recall", "in-scope acc @thr",
              "threshold", "p50 ms", "p95 ms", "queries/s", "train s", "budget"]
    na = "n/a"
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        cells = [r["method"], str(r["n_train"]), f"{r['n']}/{r['n_oos_test']}", f"{r['accuracy']:.3f}", f"{r['macro_f1']:.3f}",
                 f"{r['oos_recall']:.3f}" if "oos_recall" in r else na,
                 f"{r['in_scope_accuracy_rejecting']:.3f}" if "oos_recall" in r else na,
                 f"{r['threshold']:.3f}" if "threshold" in r else na,
                 f"{r['latency_p50_ms']:.1f}", f"{r['latency_p95_ms']:.1f}", f"{r['examples_per_s']:.1f}",
                 f"{r['train_s']:.0f}", r["budget"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_clinc150(args: argparse.Namespace, argv: list[str] | None) -> int:
    import sys

    import torch

    logging.basicConfig(level=logging.WARNING)
    path = default_clinc150_path()
    if not path.is_file():
        print(f"SKIP: {path} not found; set IGFT_EXTERNAL_DATA to the folder holding clinc150/data_full.json")
        return 0
    torch.set_num_threads(args.threads)
    if args.quick:
        data = load_clinc150(path, intents=10, per_intent={"train": 10, "validation": 5, "test": 5},
                             oos_limit={"validation": 10, "test": 10})
        args.llm_steps, args.batch_size, args.llm_train_per_intent = 2, 2, 1
        args.llm_test, args.llm_oos_test, args.prompt_test, args.latency_samples = 6, 5, 2, 3
        args.llm_val, args.llm_oos_val = 10, 5
        # generative probabilities score every label per row: too slow for CI (tests/test_classify_llm.py covers them)
        args.no_threshold = ",".join(filter(None, [args.no_threshold, "generative"]))
    else:
        data = load_clinc150(path)
    methods = [m.strip() for m in (args.methods or ",".join(ALL_METHODS)).split(",") if m.strip()]
    wall = time.perf_counter()
    rows, failed = [], []
    # --append keeps what an earlier command wrote to the results file (e.g. the LLM rows run separately)
    earlier = Path(args.results).read_text(encoding="utf-8") + "\n" if args.append and args.results and Path(args.results).is_file() else ""
    for method in methods:
        try:
            rows.append(run_method(method, data, args))
        except Exception as err:  # one method's failure must not lose the rows already measured
            if args.quick:
                raise
            logger.exception("%s failed", method)
            failed.append(f"{method}: FAILED ({err.__class__.__name__}: {str(err).splitlines()[0][:200]})")
            continue
        print(f"{method}: in-scope accuracy {rows[-1]['accuracy']:.3f} ({rows[-1]['n']} test rows)", flush=True)
        text = report(data, rows, failed, args, time.perf_counter() - wall)
        if args.results:  # rewritten after every method, so a long run interrupted late keeps its rows
            command = "python benchmarks/classifiers.py " + " ".join(argv if argv is not None else sys.argv[1:])
            head = "" if earlier else f"# Classifiers on CLINC150\n\n{__doc__.split(chr(10), 2)[2]}\n"
            Path(args.results).write_text(
                f"{earlier}{head}## Produced by\n\n```\n{command}\n```\n\nMachine: 2-core CPU, this sandbox (shared with "
                f"other jobs while it ran, so times are upper bounds).\n\n{text}\n", encoding="utf-8")
    print(report(data, rows, failed, args, time.perf_counter() - wall))
    return 0


def report(data: Clinc150, rows: list[dict], failed: list[str], args, wall_s: float) -> str:
    counts = data.task.frame["split"].value_counts()
    summary = (f"CLINC150 data_full: {len(data.task.fields[0].labels)} intents; {counts.get('train', 0)} train / "
               f"{counts.get('validation', 0)} val / {counts.get('test', 0)} test in-scope rows; oos "
               f"{len(data.oos['train'])} / {len(data.oos['validation'])} / {len(data.oos['test'])} "
               f"(oos_train unused: the threshold protocol never trains on out-of-scope queries). "
               f"Wall time {wall_s / 60:.1f} min, torch threads {args.threads}.")
    return "\n\n".join([summary, table(rows)] + failed + [f"Published: {PUBLISHED}."])
