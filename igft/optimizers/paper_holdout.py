"""Re-judge the paper's recorded prompt searches out of sample (`igft paper-runs PATH --holdout N`).

The paper picks its best prompt and reports its score on the same 25 toy conversations. Here each of
N seeded splits cuts the conversations every candidate labeled into a validation and a test half;
per backbone, the candidate the paper's own recorded GIFA outputs rank best on validation is scored on
test beside the seed prompt, and the test gain (best - seed) is collected over the splits.

- Candidates: every trial of random, greedy and SEE; for Hyperband-SEE the trials scored on the most
  conversations (its last rounds), as a rung-based search must pick (see History.best_at_full_resource).
- Seed prompt: the step-0 prompt of the backbone's run; SEE and Hyperband-SEE start from Lamarckian
  prompts and have none, so theirs is the paper's seed instruction, i.e. step 0 of its random run.
- Labels are aligned one row per message (igft.predictions, the "exact" alignment: a split by
  conversation needs conversation ids, which the paper's text join does not keep). Unlabeled messages
  form one cluster (the `cluster` missing policy). Scores are AMI x NCA as igft.metrics computes them.
"""
from __future__ import annotations

import logging
import random
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from igft.data import load_conversations
from igft.figures import pyplot, save_figure
from igft.metrics import ami_and_nca_codes
from igft.optimizers.paper_runs import RUN_FOLDERS, PaperRunsError

logger = logging.getLogger(__name__)


@dataclass
class Labeled:
    """One recorded prompt of the paper: its labels as integer codes per gold message (-1: unlabeled)."""

    name: str
    step: str
    codes: dict[int, np.ndarray]  # conversation number -> predicted code per message
    covered: frozenset[int]


def _run_dirs(folder: Path, backbone: str) -> list[Path]:
    run = folder / RUN_FOLDERS[backbone]
    if backbone != "hyperband_see":
        return [run] if run.is_dir() else []
    return [r for b in sorted(run.glob("bracket_*")) for r in sorted(b.glob("round_*"))]


def _load(run: Path, gold, vocabulary: dict[str, int]) -> list[Labeled]:
    from igft.predictions import align_gifa_output

    history = run / "history.csv"
    if not history.exists():
        raise PaperRunsError(f"{run} has no history.csv; point at the paper's `Stage 1/` folder")
    out = []
    for _, row in pd.read_csv(history).iterrows():
        gifa = run / "GIFA" / f"prompt_{int(row['prompt_id']):03d}.csv"
        if not gifa.exists():
            continue
        labels = align_gifa_output(pd.read_csv(gifa), gold, str(gifa)).labels
        codes = {}
        for conv in gold.conversations:
            if any(m.key in labels for m in conv.messages):
                codes[conv.number] = np.array([vocabulary.setdefault(labels[m.key], len(vocabulary)) if m.key in labels else -1
                                               for m in conv.messages], dtype=np.int64)
        out.append(Labeled(f"{run.name}/{int(row['prompt_id'])}", str(row["step"]), codes, frozenset(codes)))
    return out


def _objective(trial: Labeled, conversations: list[int], gold_codes: dict[int, np.ndarray]) -> float:
    g = np.concatenate([gold_codes[c] for c in conversations])
    p = np.concatenate([trial.codes[c] if c in trial.codes else np.full(len(gold_codes[c]), -1) for c in conversations])
    p = np.where(p < 0, p.max() + 1 if len(p) else 0, p)  # every unlabeled message in one shared cluster
    ami, nca = ami_and_nca_codes(g, p)
    return ami * nca


def holdout(folder: str | Path, gold_csv: str | Path, n_splits: int = 200, seed: int = 0) -> dict[str, dict]:
    """Per backbone: test_gain_mean, test_gain_sd, share_positive and the raw gains, over n_splits splits."""
    if n_splits < 1:
        raise PaperRunsError(f"--holdout needs a number of splits >= 1, got {n_splits}")
    folder = Path(folder)
    gold = load_conversations(gold_csv)
    if not gold.has_gold:
        raise PaperRunsError(f"{gold_csv} has no `intent` column; give the gold toy_conversations.csv")
    gold_vocab: dict[str, int] = {}
    gold_codes = {c.number: np.array([gold_vocab.setdefault(m.intent, len(gold_vocab)) for m in c.messages])
                  for c in gold.conversations}
    vocabulary: dict[str, int] = {}
    runs = {name: [t for run in _run_dirs(folder, name) for t in _load(run, gold, vocabulary)] for name in RUN_FOLDERS}
    runs = {k: v for k, v in runs.items() if v}
    if not runs:
        raise PaperRunsError(f"{folder} holds none of {', '.join(RUN_FOLDERS.values())}; give the paper's `Stage 1/` folder")
    paper_seed = next((t for t in runs.get("random", []) if t.step == "0"), None)
    out = {}
    for name, trials in runs.items():
        seed_trial = next((t for t in trials if t.step == "0"), None) or paper_seed
        if seed_trial is None:
            logger.warning("%s: no seed prompt to compare with; skipped", name)
            continue
        most = max(len(t.covered) for t in trials)
        candidates = [t for t in trials if len(t.covered) == most]
        universe = sorted(frozenset.intersection(seed_trial.covered, *(t.covered for t in candidates)))
        if len(universe) < 2:
            raise PaperRunsError(f"{name}: fewer than 2 conversations labeled by every candidate; cannot split")
        rng = random.Random(seed)
        gains, picks = [], []
        half = len(universe) // 2
        for _ in range(n_splits):
            order = list(universe)
            rng.shuffle(order)
            validation, test = order[:half], order[half:]
            scores = [_objective(t, validation, gold_codes) for t in candidates]
            best = candidates[max(range(len(candidates)), key=lambda k: (scores[k], -k))]
            gains.append(_objective(best, test, gold_codes) - _objective(seed_trial, test, gold_codes))
            picks.append(best.name)
        out[name] = {"test_gain_mean": statistics.fmean(gains),
                     "test_gain_sd": statistics.stdev(gains) if len(gains) > 1 else 0.0,
                     "share_positive": sum(g > 0 for g in gains) / len(gains),
                     "n_splits": n_splits, "n_candidates": len(candidates), "n_conversations": len(universe),
                     "validation_size": half, "test_size": len(universe) - half, "seed_prompt": seed_trial.name,
                     "distinct_picks": len(set(picks)), "gains": gains}
    return out


def plot_holdout(results: dict[str, dict], path: str | Path) -> Path:
    """Box plot of the test gains per backbone (one point per split), a zero line for no gain."""
    plt = pyplot()

    names = list(results)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.boxplot([results[n]["gains"] for n in names], tick_labels=names, showmeans=True)
    ax.axhline(0, ls="--", color="grey")
    n = results[names[0]]["n_splits"] if names else 0
    ax.set_ylabel("test AMI x NCA: best on validation - seed prompt")
    ax.set_title(f"the paper's searches re-judged out of sample ({n} validation/test splits)")
    fig.tight_layout()
    return save_figure(fig, path)


def summary_line(name: str, r: dict) -> str:
    return (f"{name:14s} test gain {r['test_gain_mean']:+.4f} (sd {r['test_gain_sd']:.4f}), positive in "
            f"{r['share_positive']:.0%} of {r['n_splits']} splits; {r['n_candidates']} candidates, "
            f"{r['validation_size']}/{r['test_size']} validation/test conversations")
