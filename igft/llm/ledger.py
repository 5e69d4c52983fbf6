"""The usage ledger of an output folder: what every run (and rerun) in it spent, persisted as it goes.

A rerun of `igft label` / `igft optimize` in the same --out folder continues the same job, so its
budget (--max-calls, --max-tokens, --max-dollars) counts what earlier runs there already spent. The
ledger holds one entry per run; the current run's entry is rewritten (to a temporary name, then
renamed, so a kill never leaves a torn file) after every live call, so a run killed with -9 still
has its spend counted.

A run that starts over (`igft optimize --no-resume`) starts a new job in the same folder: its entry gets
the next `job` number and budgets count only entries of that job. Earlier jobs' entries stay in the
file, so `totals(all_jobs=True)` still says what the folder has spent in all.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from datetime import datetime, timezone
from pathlib import Path

from igft.errors import IgftError
from igft.llm.usage import UsageMeter

logger = logging.getLogger(__name__)

LEDGER_FILE = "usage.json"
LEDGER_FORMAT = 1
# Counters summed over runs (the rest of a snapshot describes one run only).
SUMMED = ("calls", "live_calls", "cached_calls", "prompt_tokens", "completion_tokens", "tokens",
          "live_prompt_tokens", "live_completion_tokens", "embedding_calls", "embedded_texts",
          "live_embedded_texts", "dollars")


class LedgerError(IgftError):
    """The usage ledger of an output folder is unreadable."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def sum_usage(entries: list[dict]) -> dict:
    """Totals of the summed counters over run entries (dollars rounded to 6 places)."""
    totals: dict = {key: 0 for key in SUMMED}
    for entry in entries:
        for key in SUMMED:
            totals[key] += entry.get(key, 0) or 0
    totals["dollars"] = round(float(totals["dollars"]), 6)
    totals["runs"] = len(entries)
    return totals


class UsageLedger:
    """`usage.json` in an output folder; `attach(meter)` makes the meter count earlier runs' spend."""

    def __init__(self, out_dir: str | os.PathLike, command: str, mode: str | None = None, *, new_job: bool = False):
        self.path = Path(out_dir) / LEDGER_FILE
        self.command = command
        self.mode = mode
        self._lock = threading.Lock()
        self.earlier: list[dict] = self._load()
        last_job = max((_job(r) for r in self.earlier), default=0)
        # A new job starts its budget from zero; otherwise this run continues the folder's last job.
        self.job = last_job + 1 if new_job or not last_job else last_job
        self.current: dict = {"run": len(self.earlier) + 1, "job": self.job, "command": command, "mode": mode,
                              "started_at": _now(), "finished_at": None}
        self._meter: UsageMeter | None = None

    def _load(self) -> list[dict]:
        if not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            runs = data["runs"]
            if data.get("format") != LEDGER_FORMAT or not isinstance(runs, list):
                raise ValueError("unknown format")
        except (OSError, ValueError, KeyError, TypeError) as err:
            # Refusing is safer than starting from zero: that would silently lift the budget.
            raise LedgerError(f"{self.path} is unreadable ({err}); it holds what earlier runs in this folder spent: "
                              f"fix it, or delete it to count from zero") from err
        return [r for r in runs if isinstance(r, dict)]

    @property
    def prior(self) -> dict:
        """What the earlier runs of this job spent, summed (what this run's budget counts on top of its own)."""
        return sum_usage([r for r in self.earlier if _job(r) == self.job])

    def attach(self, meter: UsageMeter) -> UsageMeter:
        """Make `meter`'s budget checks include earlier runs, and save its counters after every call."""
        prior = self.prior
        meter.baseline = {"live_calls": prior["live_calls"],
                          "live_tokens": prior["live_prompt_tokens"] + prior["live_completion_tokens"],
                          "dollars": prior["dollars"]}
        meter.listeners.append(self.save)
        self._meter = meter
        self.save(meter)
        return meter

    def save(self, meter: UsageMeter | None = None, finished: bool = False) -> None:
        meter = meter or self._meter
        with self._lock:
            if meter is not None:
                snapshot = meter.snapshot()
                snapshot.pop("unpriced_models", None)
                self.current.update(snapshot)
            if finished:
                self.current["finished_at"] = _now()
            payload = {"format": LEDGER_FORMAT, "runs": [*self.earlier, self.current]}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(payload, indent=1), encoding="utf-8")
            tmp.replace(self.path)

    def finish(self) -> None:
        self.save(finished=True)

    def runs(self) -> list[dict]:
        with self._lock:
            return [*self.earlier, dict(self.current)]

    def totals(self, all_jobs: bool = False) -> dict:
        """Usage summed over every run of this job, this one included (all_jobs: every run in the folder)."""
        runs = self.runs()
        totals = sum_usage(runs if all_jobs else [r for r in runs if _job(r) == self.job])
        totals["job"] = None if all_jobs else self.job
        return totals

    def total_dollars(self) -> float:
        """Dollars of this job (what --max-dollars counts)."""
        return self.totals()["dollars"]


def _job(entry: dict) -> int:
    # Entries written before jobs existed belong to the folder's first job.
    job = entry.get("job", 1)
    return job if isinstance(job, int) and not isinstance(job, bool) else 1
