"""The record of a search: trials in scoring order, appended to a JSONL file as each is scored.

Appending one line per trial (flushed) means a killed search loses at most the trials in flight;
`History.load` + the slot names let a rerun reuse every finished trial instead of rescoring it.
"""
from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Iterable

import pandas as pd

from igft.errors import IgftError
from igft.optimizers.trial import Trial


FINAL_PHASE = "final"  # trials scored after the search: the seed on validation, best and seed on test


class HistoryError(IgftError):
    """A history file that cannot be read or does not belong to this search."""


class History:
    """Trials of one search. With a `path`, every appended trial is written to it at once."""

    def __init__(self, trials: Iterable[Trial] = (), path: str | Path | None = None):
        self.trials: list[Trial] = list(trials)
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        # Trials of an earlier run of the same search, by slot, waiting to be reused.
        self._resumable: dict[str, Trial] = {}
        self._on_disk: set[str] = set()

    @classmethod
    def open(cls, path: str | Path, *, resume: bool = True) -> "History":
        """A history writing to `path`; with resume, trials already in the file are offered for reuse."""
        path = Path(path)
        history = cls(path=path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and resume:
            previous = cls.load(path)
            history._resumable = {t.slot: t for t in previous.trials}
            # The file keeps its finished trials (a second kill loses nothing); reused trials are not rewritten.
            history._on_disk = set(history._resumable)
            if len(previous) != sum(1 for line in path.read_text().splitlines() if line.strip()):
                # A torn last line from a kill mid-write: rewrite the valid records atomically.
                tmp = path.with_suffix(".tmp")
                tmp.write_text("".join(json.dumps(t.to_dict(), default=_json_default) + "\n" for t in previous.trials))
                tmp.replace(path)
        else:
            path.write_text("")
        return history

    @classmethod
    def load(cls, path: str | Path) -> "History":
        path = Path(path)
        trials = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                trials.append(Trial.from_dict(json.loads(line)))
            except (json.JSONDecodeError, TypeError) as exc:
                # A search killed while writing leaves at most one torn last line: drop it.
                if number == len(path.read_text().splitlines()):
                    break
                raise HistoryError(f"{path}:{number}: not a trial record ({exc}); delete the file to start over") from exc
        return cls(trials)

    def __len__(self) -> int:
        return len(self.trials)

    def __iter__(self):
        return iter(self.trials)

    def next_id(self) -> int:
        return len(self.trials)

    def resumable(self, slot: str) -> Trial | None:
        """The trial an earlier run stored under `slot`, if any."""
        return self._resumable.get(slot)

    @property
    def n_resumable(self) -> int:
        return len(self._resumable)

    def append(self, trial: Trial) -> None:
        with self._lock:
            self.trials.append(trial)
            if self.path is not None and trial.slot not in self._on_disk:
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(trial.to_dict(), ensure_ascii=False, default=_json_default) + "\n")
                    fh.flush()

    def get(self, trial_id: int) -> Trial:
        return self.trials[trial_id]

    def search_trials(self) -> list[Trial]:
        """The trials the search compared (validation scores), without the final scores made after it."""
        return [t for t in self.trials if t.phase != FINAL_PHASE]

    def best(self, trials: Iterable[Trial] | None = None) -> Trial | None:
        """Highest objective (ties: earliest) among `trials` (default: the search's validation trials)."""
        pool = [t for t in (self.search_trials() if trials is None else trials) if not math.isnan(t.objective)]
        return max(pool, key=lambda t: (t.objective, -t.id)) if pool else None

    def best_at_full_resource(self) -> Trial | None:
        """The best among the trials scored on the most validation conversations any trial was scored on.

        A rung-based search (Hyperband) scores most trials on few conversations, where a lucky score is
        easy; only a score at the largest r may win (for random / greedy / SEE every trial has the same r).
        """
        pool = [t for t in self.search_trials() if not math.isnan(t.objective)]
        if not pool:
            return None
        r_max = max(t.r for t in pool)
        return self.best([t for t in pool if t.r == r_max])

    def final(self, name: str) -> Trial | None:
        """The (last) final score of that name: seed_val, best_test or seed_test."""
        found = [t for t in self.trials if t.phase == FINAL_PHASE and t.slot.startswith(f"{FINAL_PHASE}/{name}/")]
        return found[-1] if found else None

    @property
    def calls(self) -> int:
        return sum(t.calls for t in self.trials)

    @property
    def tokens(self) -> int:
        return sum(t.tokens for t in self.trials)

    def to_frame(self) -> pd.DataFrame:
        """One row per trial: id, slot, phase, step, operator, r, objective, report keys, costs, cumulative costs."""
        rows = []
        for t in self.trials:
            row = {"id": t.id, "slot": t.slot, "phase": t.phase, "step": t.step, "operator": t.operator,
                   "parent_ids": list(t.parent_ids), "r": t.r, "split": t.split, "objective": t.objective, "calls": t.calls,
                   "tokens": t.tokens, "cached": t.cached, "instruction": t.instruction}
            row.update({k: v for k, v in t.report.items() if isinstance(v, (int, float))})
            row.update({f"meta_{k}": v for k, v in t.meta.items() if isinstance(v, (int, float, str))})
            rows.append(row)
        frame = pd.DataFrame(rows)
        if not frame.empty:
            frame["cum_calls"] = frame["calls"].cumsum()
            frame["cum_tokens"] = frame["tokens"].cumsum()
            frame["best_so_far"] = frame["objective"].cummax()
        return frame


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
