"""Compare the four prompt-search backbones on validation and on held-out test conversations.

Replays the recorded toy runs under simulated_runs/ (no model, no network), then prints one table
(validation best, test score of that choice, the seed instruction on validation and test, test gain)
and writes backbones.png (best validation objective within the common budget, test scores marked)
and backbones_progress.png (best so far against cumulative LLM calls). In the recordings GIFA labels
with the offline labeler local:igft-labeler (real but weak labels) and the untrained SmolLM2-135M
writes the instructions, which it cannot do well: the results exercise the machinery, not the method.

    python benchmarks/backbones.py [--out DIR] [--budget CALLS]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
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
    history = History.load(out / "history.jsonl")
    return History(history.search_trials()).to_frame(), json.loads((out / "result.json").read_text())


def _f(value) -> str:
    return f"{value:8.4f}" if value is not None else "     n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/out", help="folder for the PNGs")
    parser.add_argument("--budget", type=float, help="LLM-call budget (default: the smallest run's total)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        runs = {algo: replay(algo, Path(tmp) / algo) for algo in ALGOS}
    frames = {algo: frame for algo, (frame, _) in runs.items()}
    results = {algo: result for algo, (_, result) in runs.items()}
    budget = args.budget or min(float(f["cum_calls"].max()) for f in frames.values())
    print(f"backbones on the recorded toy runs (instructions by SmolLM2-135M, GIFA by igft-labeler: a machinery "
          f"check, not a quality claim); "
          f"common budget {budget:g} LLM calls")
    print(f"{'backbone':15s} {'trials':>6s} {'max r':>5s} {'calls':>6s} {'val/tr/te':>9s} {'best@bud':>8s} "
          f"{'best val':>8s} {'best test':>9s} {'seed val':>8s} {'seed test':>9s} {'gain':>8s}")
    for algo, f in frames.items():
        r = results[algo]
        sizes = f"{r['n_validation']}/{r['n_train']}/{r['n_test']}"
        print(f"{algo:15s} {len(f):6d} {int(f['r'].max()):5d} {r['llm_calls']:6d} {sizes:>9s} {best_at_budget(f, budget):8.4f} "
              f"{_f(r['best_val'])} {_f(r['best_test']):>9s} {_f(r['seed_val'])} {_f(r['seed_test']):>9s} {_f(r['test_gain'])}")
    print("max r = validation conversations per score; best val is chosen at the largest r; test is scored once, "
          "after the search; gain = best test - seed test; calls include the final test scoring")
    tests = {algo: {k: results[algo][k] for k in ("best_test", "seed_test")} for algo in ALGOS}
    comparison = plot_comparison(frames, out / "backbones.png", budget, tests=tests)
    progress = plot_progress(frames, out / "backbones_progress.png", x="cum_calls", tests=tests,
                             title="best validation objective vs LLM calls (recorded toy runs)")
    print(f"wrote {comparison} and {progress}")


if __name__ == "__main__":
    main()
