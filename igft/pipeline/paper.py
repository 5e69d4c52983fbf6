"""The paper's own recorded runs (GPT-4o GIFA and the four prompt searches), replayed through igft.

The paper's repository (github.com/ramirosi/Intent-Guided-Fine-Tuning) carries no licence file, so igft
ships none of its files. A user who has them (a clone, or `igft paper-runs --download DIR` on a
machine with network) points igft at its `Stage 1/` folder with `--paper-runs PATH` or
$IGFT_PAPER_RUNS; the demo and the notebooks then add these rows, scored by igft's own metrics:

- the paper's GPT-4o GIFA output (`toy_intents.csv`) aligned to its gold conversations
  (igft.predictions.align_gifa_output), beside igft's embedding labeler on the same data;
- the best AMI x NCA of each recorded search as the paper's notebook joins them
  (igft.optimizers.paper_runs), and, where available, the same searches re-judged out of sample
  (igft.optimizers.paper_holdout: best-on-validation prompt minus the seed prompt, on test).
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from igft.errors import IgftError

logger = logging.getLogger(__name__)

PAPER_REPO_URL = "https://github.com/ramirosi/Intent-Guided-Fine-Tuning"
PAPER_COMMIT = "ddb29202"  # the commit whose artifacts igft's reproduction figures were checked against
ENV_VARS = ("IGFT_PAPER_RUNS", "IGFT_PAPER_STAGE1")


class PaperRunsUnavailable(IgftError):
    """The paper's artifacts are not where the user said, or cannot be downloaded."""


def _stage1_folder(path: Path) -> Path | None:
    """`path` itself or its `Stage 1/` subfolder, when it holds the paper's toy data and a search run."""
    for candidate in (path, path / "Stage 1"):
        if (candidate / "toy_conversations.csv").is_file() and (candidate / "rpo_toy").is_dir():
            return candidate
    return None


def find_paper_runs(explicit: str | Path | None = None, flag: str = "--paper-runs") -> Path | None:
    """The paper's `Stage 1/` folder from `explicit`, else $IGFT_PAPER_RUNS / $IGFT_PAPER_STAGE1; None if unset.

    A path that is given but holds no such folder is an error (one line), never silently skipped."""
    given = [(str(explicit), flag)] if explicit else []
    given += [(os.environ[v], f"${v}") for v in ENV_VARS if os.environ.get(v)]
    if not given:
        return None
    value, where = given[0]
    found = _stage1_folder(Path(value).expanduser())
    if found is None:
        raise PaperRunsUnavailable(f"{where}={value}: no toy_conversations.csv and rpo_toy/ there or in its 'Stage 1/' "
                                   f"folder; point it at a clone of {PAPER_REPO_URL} (or its 'Stage 1/' folder)")
    return found


def download_paper_repo(dest: str | Path, *, timeout: float = 300) -> Path:
    """Clone the paper's repository at PAPER_COMMIT into `dest`; returns its `Stage 1/` folder.

    Needs git and network; without them it raises PaperRunsUnavailable with one line saying so."""
    dest = Path(dest)
    if (found := _stage1_folder(dest)) is not None:
        return found
    if shutil.which("git") is None:
        raise PaperRunsUnavailable(f"git is not installed; install it, or download {PAPER_REPO_URL} at commit "
                                   f"{PAPER_COMMIT} by hand and give igft its folder (paper-runs PATH, demo --paper-runs)")
    if dest.exists() and any(dest.iterdir()):
        raise PaperRunsUnavailable(f"{dest} exists and is not empty; give a new folder to clone into")
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}  # never wait for credentials
    try:
        subprocess.run(["git", "clone", "--quiet", PAPER_REPO_URL, str(dest)], check=True, capture_output=True,
                       text=True, timeout=timeout, env=env)
        subprocess.run(["git", "-C", str(dest), "checkout", "--quiet", PAPER_COMMIT], check=True, capture_output=True,
                       text=True, timeout=60, env=env)
    except subprocess.TimeoutExpired:
        raise PaperRunsUnavailable(f"no network: cloning {PAPER_REPO_URL} timed out after {timeout:.0f} s; "
                                   "clone it on a machine with network and give igft its folder (paper-runs PATH, demo --paper-runs)") from None
    except subprocess.CalledProcessError as exc:
        reason = (exc.stderr or "").strip().splitlines()[-1:] or ["git failed"]
        raise PaperRunsUnavailable(f"no network or no access: cannot clone {PAPER_REPO_URL} ({reason[0]}); clone it on "
                                   "a machine with network and give igft its folder (paper-runs PATH, demo --paper-runs)") from None
    found = _stage1_folder(dest)
    if found is None:
        raise PaperRunsUnavailable(f"{dest}: cloned, but commit {PAPER_COMMIT} has no 'Stage 1/' folder with the toy runs")
    return found


def _labeler_row(name: str, gold, labels: dict, seconds: float | None = None) -> dict[str, Any]:
    from igft.metrics import evaluate_labels

    report = evaluate_labels(gold, labels).to_dict()
    return {"labeler": name, "AMI": report["AMI"], "NCA": report["NCA"], "AMI_x_NCA": report["AMI_x_NCA"],
            "ARI": report["ARI"], "accuracy_hungarian": report["accuracy_hungarian"],
            "coverage": len(labels) / max(gold.n_messages, 1), "n_intents": report["n_pred_intents"],
            "n_gold_intents": report["n_gold_intents"], "seconds": seconds}


def paper_figures(folder: str | Path, embedder: Any, *, holdout_splits: int = 50, seed: int = 0) -> dict[str, Any]:
    """The paper's GPT-4o GIFA, igft's embedding labeler on the same data, and the four recorded searches."""
    import pandas as pd

    from igft.data import load_conversations
    from igft.discover import label_with
    from igft.optimizers.paper_runs import best_objectives, import_paper_runs
    from igft.predictions import align_gifa_output

    folder = Path(folder)
    gold_csv = folder / "toy_conversations.csv"
    gold = load_conversations(gold_csv)
    rows = []
    gifa_csv = folder / "toy_intents.csv"
    if gifa_csv.is_file():
        frame = pd.read_csv(gifa_csv, dtype=str, keep_default_na=False)
        labels = align_gifa_output(frame, gold, str(gifa_csv)).labels
        rows.append(_labeler_row("paper GIFA (GPT-4o, recorded)", gold, labels))
    result = label_with("embeddings", gold, embedder=embedder, seed=seed)
    rows.append(_labeler_row("igft embeddings (automatic k)", gold, result.labels, result.stats.get("seconds")))
    histories = import_paper_runs(folder, gold_csv)
    best = best_objectives(histories)
    searches = {name: {"trials": len(history), "best_AMI_x_NCA": best.get(name)} for name, history in histories.items()}
    figures: dict[str, Any] = {"folder": str(folder), "labelers": rows, "search": searches}
    if holdout_splits:
        try:
            from igft.optimizers.paper_holdout import holdout
        except ImportError:  # the out-of-sample re-judging is not in this igft
            holdout = None
        if holdout is not None:
            judged = holdout(folder, gold_csv, n_splits=holdout_splits, seed=seed)
            for name, r in judged.items():
                searches.setdefault(name, {}).update({k: r[k] for k in ("test_gain_mean", "test_gain_sd", "share_positive",
                                                                        "n_splits") if k in r})
    return figures
