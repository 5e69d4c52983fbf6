"""`igft evaluate --gold CSV --pred CSV [--json]`: clustering report of predicted vs gold intents."""
from __future__ import annotations

import argparse
import json
import sys

from igft.data import DataError, load_conversations
from igft.metrics import MISSING_POLICIES, MetricsError, clustering_report, evaluate_labels, format_report
from igft.predictions import load_predictions, paper_merge

LOW_COVERAGE = 0.5  # below this share of labeled messages the figures mostly describe the missing policy


def run(args: argparse.Namespace) -> int:
    if args.align == "paper-merge":
        # The paper's inner join keeps only matched rows: this is the "drop" policy by construction.
        gold, pred, texts = paper_merge(args.gold, args.pred)
        if not gold:
            raise MetricsError(f"no message of {args.pred} matches a message of {args.gold} (text + position); "
                               "check that both files describe the same conversations")
        report = clustering_report(gold, pred, texts=texts, n_examples=args.examples, seed=args.seed, missing="drop")
    else:
        dataset = load_conversations(args.gold)
        if not dataset.has_gold:
            raise DataError(f"{args.gold}: no gold intents (column 'intent' is absent or empty); "
                            "pass a CSV whose `intent` column holds the gold labels as --gold")
        labels = load_predictions(args.pred, dataset)
        keys = {m.key for m in dataset.messages}
        if not any(key in keys for key in labels):
            raise MetricsError(f"no message of {args.pred} matches a message of {args.gold}; check that both files "
                               "describe the same conversations (conversation_number and index)")
        report = evaluate_labels(dataset, labels, n_examples=args.examples, seed=args.seed, missing=args.missing)
    if report.coverage < LOW_COVERAGE:
        print(f"igft evaluate: warning: only {report.coverage:.0%} of the gold messages have a prediction; "
              f"the figures mostly reflect the --missing {report.missing_policy} policy", file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict()))
        return 0
    print(format_report(report))
    if args.examples and report.error_examples:
        print("\nerror examples (false split = same gold, different prediction; false merge = the reverse):")
        for example in report.error_examples:
            print(f"- {example['kind']}: {example.get('message_a')!r} [{example['gold_a']} -> {example['pred_a']}]"
                  f" / {example.get('message_b')!r} [{example['gold_b']} -> {example['pred_b']}]")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score predicted intents against gold intents (AMI, NCA, purity, ...)",
        description="Score predicted intents against gold. --pred takes igft's labels.csv or the paper's GIFA "
                    "output (index,intent,count,messages), aligned to --gold by conversation text and position.")
    parser.add_argument("--gold", required=True, help="conversation CSV/JSONL with gold `intent` values")
    parser.add_argument("--pred", required=True, help="labels.csv (conversation_number,index,intent) or the paper's GIFA output")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the figures")
    parser.add_argument("--align", choices=("exact", "paper-merge"), default="exact",
                        help="exact: one prediction per gold message (default); paper-merge: the paper's text+index "
                             "inner join, which double-counts repeated texts (only to reproduce its published figures)")
    parser.add_argument("--missing", choices=MISSING_POLICIES, default="cluster",
                        help="gold messages without a prediction: cluster (default: one shared extra cluster, so "
                             "failures cost score), drop (leave them out, the paper's inner join) or singleton (one "
                             "cluster each; raises NCA and purity, only for comparison)")
    parser.add_argument("--examples", type=int, default=6, help="error examples to print (text output only)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the error-example sampling")
    parser.set_defaults(func=run)
