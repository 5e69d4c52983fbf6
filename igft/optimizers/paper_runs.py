"""Import the paper's recorded prompt-search runs (its repository's `Stage 1/` folder) as igft Histories.

Layout read: `rpo_toy/` (random), `gpo_toy/` (greedy), `see_toy/` (SEE), each with `history.csv`
(prompt_id, step, prompt, parent_idx, ...), `prompts/prompt_NNN.txt` and `GIFA/prompt_NNN.csv` (the
GIFA output of that prompt: index, intent, count = position in the conversation, messages = the
prefixed text); and `hyperband_see/bracket_BB/round_RR/` with the same files per round. Each trial's
report is recomputed with igft's metrics against the gold CSV. Two alignments of a GIFA output to gold:
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
from igft.optimizers.trial import Trial

logger = logging.getLogger(__name__)

RUN_FOLDERS = {"random": "rpo_toy", "greedy": "gpo_toy", "see": "see_toy", "hyperband_see": "hyperband_see"}


class PaperRunsError(IgftError):
    """The folder is not the paper's `Stage 1/` folder (or a run in it is incomplete)."""


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip().lower()


def _blocks(frame: pd.DataFrame) -> list[pd.DataFrame]:
    """Split a GIFA output into conversations: `count` (position) restarts at 0 for each."""
    starts = [i for i, c in enumerate(frame["count"].tolist()) if int(c) == 0 or i == 0]
    return [frame.iloc[s:e] for s, e in zip(starts, starts[1:] + [len(frame)])]


def align_gifa_output(frame: pd.DataFrame, gold: Dataset) -> dict[tuple[int, int], str]:
    """Map each row of a paper GIFA output to a gold message (conversation_number, index) -> intent.

    Each output conversation is matched to the unused gold conversation sharing the most message lines;
    inside it a row goes to the gold message with the same text, nearest to its position.
    """
    gold_lines = {c.number: [_norm(m.line) for m in c.messages] for c in gold.conversations}
    used: set[int] = set()
    labels: dict[tuple[int, int], str] = {}
    for block in _blocks(frame):
        lines = [_norm(t) for t in block["messages"]]
        best, best_overlap = None, 0
        for number, g_lines in gold_lines.items():
            if number in used:
                continue
            overlap = len(set(lines) & set(g_lines))
            if overlap > best_overlap:
                best, best_overlap = number, overlap
        if best is None:
            continue
        used.add(best)
        taken: set[int] = set()
        for line, position, intent in zip(lines, block["count"].astype(int), block["intent"]):
            candidates = [i for i, g in enumerate(gold_lines[best]) if g == line and i not in taken]
            if not candidates:
                continue
            index = min(candidates, key=lambda i: abs(i - position))
            taken.add(index)
            labels[(best, gold.subset([best]).conversations[0].messages[index].index)] = str(intent)
    return labels


ALIGNMENTS = ("paper", "exact")


def paper_merge(frame: pd.DataFrame, gold_frame: pd.DataFrame) -> pd.DataFrame:
    """The paper's alignment: inner join of the GIFA output (messages, count) with gold (conversation, index)."""
    merged = frame.merge(gold_frame, left_on=["messages", "count"], right_on=["conversation", "index"],
                         how="inner", suffixes=("_pred", "_gold"))
    return merged


def _metrics():
    try:
        import igft.metrics as metrics
    except ImportError:  # metrics module missing: the stand-in computes AMI, NCA, AMI_x_NCA
        return None
    return metrics


def _report_exact(scored: Dataset, labels: dict) -> dict:
    metrics = _metrics()
    if metrics is None:
        from igft.optimizers.testing import simple_report
        return simple_report(scored, labels)
    from igft.optimizers.objective import report_to_dict
    return report_to_dict(metrics.evaluate_labels(scored, labels))


def _report_lists(gold: list, pred: list, texts: list) -> dict:
    metrics = _metrics()
    if metrics is None:
        from igft.optimizers.testing import simple_report_lists
        return simple_report_lists(gold, pred)
    from igft.optimizers.objective import report_to_dict
    return report_to_dict(metrics.clustering_report(gold, pred, texts=texts))


def _read_prompt(run: Path, prompt_id: int, row: pd.Series) -> str:
    path = run / "prompts" / f"prompt_{prompt_id:03d}.txt"
    return path.read_text(encoding="utf-8") if path.exists() else str(row.get("prompt", ""))


def import_run(run: Path, gold: Dataset, *, key: str = "AMI_x_NCA", start_id: int = 0, slot_prefix: str = "",
               meta: dict | None = None, alignment: str = "paper", gold_frame: pd.DataFrame | None = None) -> list[Trial]:
    """Trials of one run folder (history.csv + GIFA/), reports recomputed against `gold`."""
    history_csv = run / "history.csv"
    if not history_csv.exists():
        raise PaperRunsError(f"{run} has no history.csv; point at the paper's `Stage 1/` folder")
    frame = pd.read_csv(history_csv)
    if alignment not in ALIGNMENTS:
        raise PaperRunsError(f"unknown alignment {alignment!r}; use paper or exact")
    gold_frame = gold.to_frame() if gold_frame is None else gold_frame
    trials = []
    for _, row in frame.iterrows():
        prompt_id = int(row["prompt_id"])
        gifa = run / "GIFA" / f"prompt_{prompt_id:03d}.csv"
        if not gifa.exists():
            logger.warning("%s: no GIFA output for prompt %d; skipped", run, prompt_id)
            continue
        output = pd.read_csv(gifa)
        labels = align_gifa_output(output, gold)
        if alignment == "exact":
            scored = gold.subset(sorted({c for c, _ in labels}, key=gold.numbers.index))
            report = _report_exact(scored, labels)
            n_scored = len(scored)
        else:
            merged = paper_merge(output, gold_frame)
            report = _report_lists(merged["intent_gold"].tolist(), merged["intent_pred"].tolist(), merged["messages"].tolist())
            n_scored = len({c for c, _ in labels})
        parent = row.get("parent_idx")
        parents = [] if parent is None or (isinstance(parent, float) and math.isnan(parent)) else [int(parent)]
        step = str(row["step"])
        trials.append(Trial(id=start_id + len(trials), slot=f"{slot_prefix}{prompt_id}", phase=step,
                            step=int(step) if step.isdigit() else int(re.sub(r"\D", "", step) or 0),
                            instruction=_read_prompt(run, prompt_id, row).strip(), parent_ids=parents,
                            operator="paper", r=n_scored, objective=float(report[key]), report=report,
                            labels=[[c, i, t] for (c, i), t in sorted(labels.items())],
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
    # The paper's join works on the raw CSV text (prefix included), exactly as the paper's notebook did.
    gold_frame = pd.read_csv(gold_csv)
    out: dict[str, History] = {}
    for name, sub in RUN_FOLDERS.items():
        run = folder / sub
        if not run.is_dir():
            continue
        if name != "hyperband_see":
            out[name] = History(import_run(run, gold, key=key, slot_prefix=f"{name}/", alignment=alignment,
                                           gold_frame=gold_frame))
            continue
        trials: list[Trial] = []
        for bracket in sorted(run.glob("bracket_*")):
            for round_dir in sorted(bracket.glob("round_*")):
                b, r = int(bracket.name.split("_")[1]), int(round_dir.name.split("_")[1])
                trials += import_run(round_dir, gold, key=key, start_id=len(trials), slot_prefix=f"{name}/b{b}/r{r}/",
                                     meta={"bracket": b, "round": r}, alignment=alignment, gold_frame=gold_frame)
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
