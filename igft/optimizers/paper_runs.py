"""Import the paper's recorded prompt-search runs (its repository's `Stage 1/` folder) as igft Histories.

Layout read: `rpo_toy/` (random), `gpo_toy/` (greedy), `see_toy/` (SEE), each with `history.csv`
(prompt_id, step, prompt, parent_idx, ...), `prompts/prompt_NNN.txt` and `GIFA/prompt_NNN.csv` (the
GIFA output of that prompt: index, intent, count = position in the conversation, messages = the
prefixed text); and `hyperband_see/bracket_BB/round_RR/` with the same files per round. Each trial's
report is recomputed with igft.metrics against the gold CSV, aligned by igft.predictions. Two alignments of a GIFA output to gold:
- "paper" (default): the paper's own inner join on (message text, position). A line repeated at the same
  position in several conversations ("customer: Thanks!") joins several times, so a few messages count
  twice; this reproduces the figures the paper prints (e.g. random 0.52668).
- "exact": each output conversation is matched to one gold conversation, each row to one message,
  and scored with `evaluate_labels` (what `igft evaluate` would say; about 0.02 lower here).
"""
from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import pandas as pd

from igft.data import Dataset, load_conversations
from igft.errors import IgftError
from igft.optimizers.history import History
from igft.optimizers.objective import report_to_dict
from igft.optimizers.trial import Trial

logger = logging.getLogger(__name__)

RUN_FOLDERS = {"random": "rpo_toy", "greedy": "gpo_toy", "see": "see_toy", "hyperband_see": "hyperband_see"}


class PaperRunsError(IgftError):
    """The folder is not the paper's `Stage 1/` folder (or a run in it is incomplete)."""


ALIGNMENTS = ("paper", "exact")


def _report_exact(gold: Dataset, output: pd.DataFrame, source: str) -> tuple[dict, int]:
    from igft.metrics import evaluate_labels
    from igft.predictions import align_gifa_output

    labels = align_gifa_output(output, gold, source=source).labels
    scored = gold.subset(sorted({c for c, _ in labels}, key=gold.numbers.index))
    return report_to_dict(evaluate_labels(scored, labels)), len(scored)


def _report_paper(gold_csv: Path, gifa_csv: Path) -> tuple[dict, int]:
    from igft.metrics import clustering_report
    from igft.predictions import paper_merge

    gold, pred, texts = paper_merge(gold_csv, gifa_csv)
    n_conversations = int((pd.read_csv(gifa_csv)["count"] == 0).sum())
    return report_to_dict(clustering_report(gold, pred, texts=texts)), n_conversations


def _read_prompt(run: Path, prompt_id: int, row: pd.Series) -> str:
    path = run / "prompts" / f"prompt_{prompt_id:03d}.txt"
    return path.read_text(encoding="utf-8") if path.exists() else str(row.get("prompt", ""))


def import_run(run: Path, gold: Dataset, gold_csv: Path, *, key: str = "AMI_x_NCA", start_id: int = 0,
               slot_prefix: str = "", meta: dict | None = None, alignment: str = "paper") -> list[Trial]:
    """Trials of one run folder (history.csv + GIFA/), reports recomputed against `gold`."""
    history_csv = run / "history.csv"
    if not history_csv.exists():
        raise PaperRunsError(f"{run} has no history.csv; point at the paper's `Stage 1/` folder")
    frame = pd.read_csv(history_csv)
    if alignment not in ALIGNMENTS:
        raise PaperRunsError(f"unknown alignment {alignment!r}; use paper or exact")
    trials = []
    for _, row in frame.iterrows():
        prompt_id = int(row["prompt_id"])
        gifa = run / "GIFA" / f"prompt_{prompt_id:03d}.csv"
        if not gifa.exists():
            logger.warning("%s: no GIFA output for prompt %d; skipped", run, prompt_id)
            continue
        if alignment == "exact":
            report, n_scored = _report_exact(gold, pd.read_csv(gifa), str(gifa))
        else:
            report, n_scored = _report_paper(gold_csv, gifa)
        parent = row.get("parent_idx")
        parents = [] if parent is None or (isinstance(parent, float) and math.isnan(parent)) else [int(parent)]
        step = str(row["step"])
        trials.append(Trial(id=start_id + len(trials), slot=f"{slot_prefix}{prompt_id}", phase=step,
                            step=int(step) if step.isdigit() else int(re.sub(r"\D", "", step) or 0),
                            instruction=_read_prompt(run, prompt_id, row).strip(), parent_ids=parents,
                            operator="paper", r=n_scored, objective=float(report[key]), report=report,
                            meta=dict(meta or {}, paper_objective=float(row["ami_x_nca"]), prompt_id=prompt_id)))
    return trials


def import_paper_runs(folder: str | Path, gold_csv: str | Path, *, key: str = "AMI_x_NCA",
                      alignment: str = "paper") -> dict[str, History]:
    """{"random", "greedy", "see", "hyperband_see"} -> History, for the run folders present in `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PaperRunsError(f"{folder} is not a folder; give the paper repository's `Stage 1/` folder")
    gold = load_conversations(gold_csv)
    if not gold.has_gold:
        raise PaperRunsError(f"{gold_csv} has no `intent` column; give the gold toy_conversations.csv")

    out: dict[str, History] = {}
    for name, sub in RUN_FOLDERS.items():
        run = folder / sub
        if not run.is_dir():
            continue
        if name != "hyperband_see":
            out[name] = History(import_run(run, gold, Path(gold_csv), key=key, slot_prefix=f"{name}/", alignment=alignment))
            continue
        trials: list[Trial] = []
        for bracket in sorted(run.glob("bracket_*")):
            for round_dir in sorted(bracket.glob("round_*")):
                b, r = int(bracket.name.split("_")[1]), int(round_dir.name.split("_")[1])
                trials += import_run(round_dir, gold, Path(gold_csv), key=key, start_id=len(trials), slot_prefix=f"{name}/b{b}/r{r}/",
                                     meta={"bracket": b, "round": r}, alignment=alignment)
        out[name] = History(trials)
    if not out:
        raise PaperRunsError(f"{folder} holds none of {', '.join(RUN_FOLDERS.values())}; give the paper's `Stage 1/` folder")
    return out


def best_objectives(histories: dict[str, History]) -> dict[str, float]:
    """Best objective per backbone; Hyperband-SEE: best of the last round of each bracket (the paper's figure)."""
    out = {}
    for name, history in histories.items():
        trials = history.trials
        if name == "hyperband_see":
            last = {}
            for t in trials:
                b = t.meta["bracket"]
                last[b] = max(last.get(b, 0), t.meta["round"])
            trials = [t for t in trials if t.meta["round"] == last[t.meta["bracket"]]]
        best = history.best(trials)
        out[name] = best.objective if best else float("nan")
    return out
