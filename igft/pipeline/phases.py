"""Wall and CPU seconds of named phases (the demo's summary.json `seconds` / `cpu_seconds`).

CPU time is this process's (all threads): a shared machine's load does not inflate it the way it
inflates wall time, so the two side by side tell a slow machine from slow code.
"""
from __future__ import annotations

import time
from contextlib import contextmanager


class PhaseTimer:
    """`with timer("train"): ...` records {"train": {"wall": s, "cpu": s}} in `timer.seconds`."""

    def __init__(self):
        self.seconds: dict[str, dict[str, float]] = {}

    @contextmanager
    def __call__(self, name: str):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds[name] = {"wall": round(time.perf_counter() - wall, 1), "cpu": round(time.process_time() - cpu, 1)}

    def column(self, kind: str) -> dict[str, float]:
        """{phase: seconds} of one kind ("wall" or "cpu")."""
        return {name: times[kind] for name, times in self.seconds.items()}
