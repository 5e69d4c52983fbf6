"""`igft optimize`, `igft paper-runs`, `igft hyperband-schedule`: prompt search over GIFA's instruction.

`igft optimize` writes history.jsonl (one line per scored trial; a rerun resumes from it), result.json
and progress plots into --out. Without --data and --cassette, --mode replay replays the package's
recorded run of that backbone (simulated_runs/<backbone>/: lm.jsonl, gifa_lm.jsonl, embeddings.jsonl, run.json —
run.json holds the recorded settings, used as defaults so the replay sends the recorded requests).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


from igft.optimizers.command import ALGO_DIRS, RUN_DEFAULTS


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_optimize(subparsers)
    p = subparsers.add_parser("paper-runs", help="import the paper's recorded prompt-search runs and rescore them",
                              description="Read rpo_toy/, gpo_toy/, see_toy/, hyperband_see/ of the paper's `Stage 1/` "
                                          "folder and recompute every trial's scores against the gold CSV.")
    p.add_argument("path", nargs="?", help="the paper repository's `Stage 1/` folder (or a clone of the repository); "
                                           "omit it with --download")
    p.add_argument("--download", metavar="DIR",
                   help="first clone the paper's repository at its pinned commit into DIR (needs git and network) "
                        "and read its `Stage 1/` folder")
    p.add_argument("--gold", help="gold conversations CSV (default: toy_conversations.csv of the `Stage 1/` folder, "
                                  "as the paper's repository lays it out)")
    p.add_argument("--alignment", choices=("paper", "exact"), default="paper",
                   help="paper: the paper's join on text + position (reproduces its figures); exact: one row per message")
    p.add_argument("--objective", default="AMI_x_NCA", help="report key to rank trials by")
    p.add_argument("--json", action="store_true", help='print {"random": best, "greedy": best, "see": best, "hyperband_see": best_of_last_round}')
    p.add_argument("--out", help="also write one history JSONL per backbone into this folder")
    p.add_argument("--holdout", type=int, metavar="N",
                   help="re-judge out of sample: N seeded validation/test halvings of the conversations; per backbone the "
                        "prompt ranked best on validation is scored on test beside the seed prompt (prints test_gain_mean, "
                        "test_gain_sd, share_positive)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --holdout splits")
    p.add_argument("--png", help="with --holdout: write a box plot of the test gains to this PNG file")
    p.set_defaults(func=run_paper_runs)

    p = subparsers.add_parser("hyperband-schedule", help="print the paper's Hyperband schedules for a time budget")
    p.add_argument("--hours", type=float, required=True, help="budget in hours (4 s per evaluation)")
    p.add_argument("--eta", type=int, nargs="+", default=[2, 3, 5], help="reduction factors")
    p.add_argument("--r-min", type=int, default=4, help="fewest validation conversations")
    p.add_argument("--r-max", type=int, default=25, help="most validation conversations")
    p.add_argument("--n-min", type=int, default=1, help="smallest population of the last rung")
    p.add_argument("--json", action="store_true", help="print the schedules as JSON")
    p.set_defaults(func=run_schedule)


def _register_optimize(subparsers) -> None:
    from igft.optimizers.options import add_arguments

    p = subparsers.add_parser(
        "optimize", help="search GIFA's instruction with random, greedy, SEE or Hyperband-SEE",
        description="Prompt search, judged out of sample: the conversations are split once (seeded) into train "
                    "(feedback), validation (every comparison) and test (scored once at the end). Without --data and "
                    "--cassette, --mode replay replays the bundled recorded run of the backbone on the toy data (instructions "
                    "by SmolLM2-135M, GIFA labels by local:igft-labeler: it exercises the machinery, not the method). Search options default to the recorded run's "
                    "values (run.json), else to the library's defaults shown here. --max-calls / --max-tokens / "
                    "--max-dollars mean what they mean in `igft label`: live usage over every run of the job in --out "
                    "(usage.json); the final test scoring is charged too and may run past them (result.json "
                    "final_scoring says what it cost).")
    a = p.add_argument
    a("--algo", required=True, choices=tuple(ALGO_DIRS), help="backbone")
    a("--data", help="conversation CSV/JSONL with gold intents (default: the bundled toy conversations)")
    a("--llm", help=f"LLM spec for meta-prompts, and for GIFA without --gifa-llm (default: the cassette's, else {RUN_DEFAULTS['llm']})")
    a("--gifa-llm", help="LLM spec that labels with GIFA inside every trial, e.g. local:igft-labeler, which cannot write "
                         "instructions (default: the cassette's, else --llm); recorded in the cassette's gifa_lm.jsonl")
    a("--embedder", help=f"embedder spec for GIFA retrieval and semantic pairing (default: the cassette's, else {RUN_DEFAULTS['embedder']})")
    a("--mode", choices=("live", "record", "replay"), help="default: replay without --data, else live")
    a("--cassette", help="cassette folder (lm.jsonl, gifa_lm.jsonl with --gifa-llm, embeddings.jsonl, run.json); "
                        "default without --data: simulated_runs/<algo>")
    a("--out", required=True, help="output folder: history.jsonl, result.json, progress_*.png")
    a("--no-resume", action="store_true", help="start over instead of reusing trials in --out/history.jsonl: a new "
                                                "job, whose budget counts from zero (earlier runs stay in usage.json)")
    a("--max-conversations", type=int, help="use only the first N conversations of the data")
    add_arguments(p)
    p.set_defaults(func=run_optimize)


# -- optimize ---------------------------------------------------------------------------------------------

def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def run_optimize(args: argparse.Namespace) -> int:
    from igft.optimizers.command import OptimizeRequest, option_names, run_optimize as run

    names = option_names()
    overrides = {k: v for k, v in vars(args).items() if k in names and k != "data"}
    done = run(OptimizeRequest(algo=args.algo, out=args.out, data=args.data, mode=args.mode, cassette=args.cassette,
                               overrides=overrides, resume=not args.no_resume))
    result, o, mode, out = done.result, done.settings["options"], done.settings["mode"], Path(args.out)
    summary = result.summary()
    sizes = summary["split_sizes"]
    print(f"{args.algo}: {summary['trials']} trials on {sizes.get('validation')} validation conversations "
          f"(train {sizes.get('train')}, test {sizes.get('test')}); {o['objective']}: "
          f"best validation {_fmt(summary['best_val'])} / test {_fmt(summary['best_test'])}, "
          f"seed instruction validation {_fmt(summary['seed_val'])} / test {_fmt(summary['seed_test'])}, "
          f"test gain {_fmt(summary['test_gain'])} (best: trial {summary['best_trial']}, r={summary['best_r']})")
    job = result.usage.get("job", {})
    print(f"LLM calls {summary['llm_calls']} (live this run {done.usage['live_calls']}, live in this job "
          f"{job.get('live_calls', done.usage['live_calls'])} over {job.get('runs', 1)} run(s)), tokens {summary['tokens']} "
          f"[mode {mode}; instructions by {result.models['llm']}, GIFA labels by {result.models['gifa_llm']}]")
    if result.stopped:
        print(f"stopped early: {result.stopped}")
        final = summary["final_scoring"]
        if final.get("after_budget_stop") and final.get("live_calls"):
            print(f"the final scoring ran past the spent budget: {final['live_calls']} live calls, "
                  f"{final.get('live_tokens', 0)} tokens (charged to this job)")
    print(f"best instruction: {summary['best_instruction']!r}")
    print(f"outputs: {out / 'history.jsonl'}, {out / 'result.json'}, {out / 'progress_calls.png'}")
    return 0


# -- paper-runs, hyperband-schedule --------------------------------------------------------------------------

def _paper_paths(args: argparse.Namespace) -> None:
    """Set args.path (the `Stage 1/` folder) and args.gold from PATH or --download DIR; one IgftError line otherwise."""
    from igft.errors import IgftError
    from igft.pipeline.paper import download_paper_repo, find_paper_runs

    if args.download and args.path:
        raise IgftError("give either PATH or --download DIR, not both (--download clones into DIR and reads it)")
    if args.download:
        args.path = str(download_paper_repo(args.download))
    elif not args.path:
        raise IgftError("paper-runs needs the paper's `Stage 1/` folder: pass PATH, or --download DIR to clone it")
    if args.gold is None:
        folder = find_paper_runs(args.path, flag="PATH")  # PATH or its `Stage 1/`; one line when neither holds the runs
        args.path, args.gold = str(folder), str(folder / "toy_conversations.csv")


def run_paper_runs(args: argparse.Namespace) -> int:
    from igft.optimizers.paper_runs import best_objectives, import_paper_runs

    _paper_paths(args)
    if args.holdout is not None:
        return _run_holdout(args)
    histories = import_paper_runs(args.path, args.gold, key=args.objective, alignment=args.alignment)
    best = best_objectives(histories)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name, history in histories.items():
            with (out / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
                for trial in history:
                    fh.write(json.dumps(trial.to_dict(), default=str) + "\n")
    if args.json:
        print(json.dumps({k: (None if math.isnan(v) else v) for k, v in best.items()}))
        return 0
    for name, history in histories.items():
        print(f"{name:14s} trials {len(history):3d}  best {args.objective} {best[name]:.5f}")
    return 0


def _run_holdout(args: argparse.Namespace) -> int:
    from igft.optimizers.paper_holdout import holdout, plot_holdout, summary_line

    results = holdout(args.path, args.gold, n_splits=args.holdout, seed=args.seed)
    if args.png:
        plot_holdout(results, args.png)
    if args.json:
        print(json.dumps({name: {k: v for k, v in r.items() if k != "gains"} for name, r in results.items()}))
        return 0
    for name, r in results.items():
        print(summary_line(name, r))
    if args.png:
        print(f"plot: {args.png}")
    return 0


def run_schedule(args: argparse.Namespace) -> int:
    from igft.optimizers.hyperband import paper_schedule

    schedules = paper_schedule(args.hours, args.eta, args.r_min, args.r_max, args.n_min)
    if args.json:
        print(json.dumps(schedules))
        return 0
    if not schedules:
        print("no eta fits this budget; raise --hours or lower --r-max / --n-min")
    for s in schedules:
        print(f"eta {s['eta']}: rounds {s['rounds']}, x {s['x_list']}, R {s['R_list']}, "
              f"multiplicity {s['multiplicity']}, cost {s['total_cost']} of {s['budget']} evaluations")
    return 0
