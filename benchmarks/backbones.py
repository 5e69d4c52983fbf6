"""Compare the four prompt-search backbones and a seed-only baseline at the same LLM-call budget.

Replays the recorded toy runs under simulated_runs/ (no model, no network), then prints one table and
writes backbones.png (best objective within the common budget) and backbones_progress.png (best so far
against cumulative LLM calls). The recordings use SmolLM2-135M, which cannot really do GIFA: the
figures exercise the machinery, not the method.

    python benchmarks/backbones.py [--out DIR] [--budget CALLS]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import math
import tempfile
from pathlib import Path

from igft.cli import main as igft_main
from igft.optimizers import History
from igft.optimizers.results import best_at_budget, plot_comparison, plot_progress

ALGOS = ("random", "greedy", "see", "hyperband-see")


def replay(algo: str, out: Path):
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        code = igft_main(["optimize", "--algo", algo, "--mode", "replay", "--out", str(out)])
    if code != 0:
        raise SystemExit(f"replay of {algo} failed (exit {code}); is simulated_runs/{algo.replace('-', '_')} recorded?")
    return History.load(out / "history.jsonl").to_frame()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/out", help="folder for the PNGs")
    parser.add_argument("--budget", type=float, help="LLM-call budget (default: the smallest run's total)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        frames = {algo: replay(algo, Path(tmp) / algo) for algo in ALGOS}
    budget = args.budget or min(float(f["cum_calls"].max()) for f in frames.values())
    # Seed-only baseline: the seed instruction scored on the same conversations, no search at all.
    seed_rows = [f[f["phase"] == "seed"]["objective"] for f in frames.values()]
    baseline = max((float(s.iloc[0]) for s in seed_rows if len(s)), default=float("nan"))
    print(f"backbones on the recorded toy runs (SmolLM2-135M: machinery check, not a quality claim); "
          f"common budget {budget:g} LLM calls")
    print(f"{'backbone':15s} {'trials':>6s} {'max r':>5s} {'calls':>6s} {'tokens':>8s} {'best@budget':>11s} {'best':>8s} {'vs seed':>8s}")
    for algo, f in frames.items():
        at_budget = best_at_budget(f, budget)
        ratio = f"{at_budget / baseline:7.2f}x" if math.isfinite(baseline) and baseline > 0.01 else "     n/a"
        print(f"{algo:15s} {len(f):6d} {int(f['r'].max()):5d} {int(f['cum_calls'].max()):6d} {int(f['cum_tokens'].max()):8d} "
              f"{at_budget:11.4f} {f['objective'].max():8.4f} {ratio}")
    print(f"{'seed only':15s} {1:6d} {'':5s} {'-':>6s} {'-':>8s} {baseline:11.4f} {baseline:8.4f}")
    print("max r = validation conversations per score; 'vs seed' is n/a when the seed's objective is ~0")
    comparison = plot_comparison({**frames}, out / "backbones.png", budget, baseline=baseline)
    progress = plot_progress(frames, out / "backbones_progress.png", x="cum_calls",
                             title="best objective vs LLM calls (recorded SmolLM2 toy runs)")
    print(f"wrote {comparison} and {progress}")


if __name__ == "__main__":
    main()
