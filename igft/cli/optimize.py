"""`igft optimize`, `igft paper-runs`, `igft hyperband-schedule`: prompt search over GIFA's instruction.

`igft optimize` writes history.jsonl (one line per scored trial; a rerun resumes from it), result.json
and progress plots into --out. Without --data and --cassette, --mode replay replays the package's
recorded run of that backbone (simulated_runs/<backbone>/: lm.jsonl, embeddings.jsonl, run.json —
run.json holds the recorded settings, used as defaults so the replay sends the recorded requests).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


from igft.optimizers.command import ALGO_DIRS, DEFAULTS


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_optimize(subparsers)
    p = subparsers.add_parser("paper-runs", help="import the paper's recorded prompt-search runs and rescore them",
                              description="Read rpo_toy/, gpo_toy/, see_toy/, hyperband_see/ of the paper's `Stage 1/` "
                                          "folder and recompute every trial's scores against the gold CSV.")
    p.add_argument("path", help="the paper repository's `Stage 1/` folder")
    p.add_argument("--gold", required=True, help="gold conversations CSV (the paper's toy_conversations.csv)")
    p.add_argument("--alignment", choices=("paper", "exact"), default="paper",
                   help="paper: the paper's join on text + position (reproduces its figures); exact: one row per message")
    p.add_argument("--objective", default="AMI_x_NCA", help="report key to rank trials by")
    p.add_argument("--json", action="store_true", help='print {"random": best, "greedy": best, "see": best, "hyperband_see": best_of_last_round}')
    p.add_argument("--out", help="also write one history JSONL per backbone into this folder")
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
    p = subparsers.add_parser(
        "optimize", help="search GIFA's instruction with random, greedy, SEE or Hyperband-SEE",
        description="Prompt search. Without --data and --cassette, --mode replay replays the bundled recorded "
                    "run of the backbone (SmolLM2 on the toy data: it exercises the machinery, not the method).")
    a = p.add_argument
    a("--algo", required=True, choices=tuple(ALGO_DIRS), help="backbone")
    a("--data", help="conversation CSV/JSONL with gold intents (default: the bundled toy conversations)")
    a("--llm", help="LLM spec for meta-prompts and GIFA (default: the cassette's, else local:smollm2)")
    a("--embedder", help="embedder spec for GIFA retrieval and semantic pairing (default: the cassette's, else local:minilm)")
    a("--mode", choices=("live", "record", "replay"), help="default: replay without --data, else live")
    a("--cassette", help="cassette folder (lm.jsonl, embeddings.jsonl, run.json); default without --data: simulated_runs/<algo>")
    a("--out", required=True, help="output folder: history.jsonl, result.json, progress_*.png")
    a("--no-resume", action="store_true", help="start over instead of reusing trials in --out/history.jsonl")
    a("--max-conversations", type=int, help="use only the first N conversations of the data")
    g = p.add_argument_group("budget (a spent budget ends the search cleanly; all trials so far are kept)")
    g.add_argument("--max-calls", type=int, help="LLM calls (meta-prompts + GIFA, cached replays included)")
    g.add_argument("--max-tokens", type=int, help="prompt + completion tokens")
    g.add_argument("--max-dollars", type=float, help="estimated dollars (priced models only)")
    g.add_argument("--max-trials", type=int, help="scored trials")
    g = p.add_argument_group("search")
    g.add_argument("--objective", help="report key to maximise (default AMI_x_NCA)")
    g.add_argument("--seed", type=int, help="seed of validation order, parent choice, request seeds")
    g.add_argument("--concurrency", type=int, help="candidates generated/scored in parallel (results do not depend on it)")
    g.add_argument("--r", type=int, help="validation conversations per score (random/greedy/see; default 25)")
    g.add_argument("--feedback-on", choices=("validation", "train"), help="report the feedback is built from (default: validation for random/greedy, train for SEE)")
    g.add_argument("--train-r", type=int, help="train conversations labeled for feedback (feedback-on train)")
    g.add_argument("--temperature", type=float, help="temperature of meta-prompt calls")
    g.add_argument("--meta-max-tokens", type=int, help="completion budget of meta-prompt calls")
    g.add_argument("--gifa-max-tokens", type=int, help="GIFA: cap on completion tokens per labeling request")
    g.add_argument("--gifa-tokens-per-message", type=int, help="GIFA: completion tokens per message line")
    g.add_argument("--gifa-max-retries", type=int, help="GIFA: retries after an unusable answer")
    g = p.add_argument_group("random / greedy")
    g.add_argument("--iterations", type=int, help="iterations including the seed instruction (default 10)")
    g.add_argument("--children", type=int, help="children per iteration (default 1, the paper)")
    g.add_argument("--direct-rewrite", action="store_true", default=None, help="one rewrite call instead of lagged feedback")
    g = p.add_argument_group("SEE")
    g.add_argument("--population", type=int, help="population size (default 5)")
    g.add_argument("--phases", help="comma list of init,feedback,global,semantic (default: all; hyperband-see: init,feedback)")
    g.add_argument("--feedback-rounds", type=int, help="K1: max feedback-mutation rounds")
    g.add_argument("--global-rounds", type=int, help="max global-evolution rounds")
    g.add_argument("--semantic-rounds", type=int, help="max semantic-mutation rounds")
    g.add_argument("--tolerance", type=int, help="rounds without min-gain before a phase stops")
    g.add_argument("--min-gain", type=float, help="gain of the best that counts as progress")
    g.add_argument("--pairing-weight", type=float, help="crossover: weight of diversity vs quality")
    g.add_argument("--lamarckian-examples", type=int, help="message -> intent pairs per Lamarckian induction")
    g = p.add_argument_group("Hyperband-SEE")
    g.add_argument("--hours", type=float, help="budget in hours (the paper's 4 s per evaluation)")
    g.add_argument("--eta", type=int, help="reduction factor")
    g.add_argument("--r-min", type=int, help="fewest validation conversations")
    g.add_argument("--r-max", type=int, help="most validation conversations")
    g.add_argument("--n-min", type=int, help="smallest population of the last rung")
    g.add_argument("--variant", choices=("paper", "li"), help="paper schedule or standard Hyperband (Li et al.)")
    g.add_argument("--brackets", type=int, help="run only the first N brackets")
    p.set_defaults(func=run_optimize)


# -- optimize ---------------------------------------------------------------------------------------------

def run_optimize(args: argparse.Namespace) -> int:
    from igft.optimizers.command import OptimizeRequest, run_optimize as run

    overrides = {k: v for k, v in vars(args).items() if k in DEFAULTS and k != "data"}
    done = run(OptimizeRequest(algo=args.algo, out=args.out, data=args.data, mode=args.mode, cassette=args.cassette,
                               overrides=overrides, resume=not args.no_resume))
    result, o, mode, out = done.result, done.settings["options"], done.settings["mode"], Path(args.out)
    summary = result.summary()
    best = summary["best_objective"]
    print(f"{args.algo}: {summary['trials']} trials, best {o['objective']} "
          f"{'n/a' if best is None else f'{best:.4f}'} (trial {summary['best_trial']}); "
          f"LLM calls {summary['llm_calls']} (live {done.usage['live_calls']}), tokens {summary['tokens']} [mode {mode}]")
    if result.stopped:
        print(f"stopped early: {result.stopped}")
    print(f"best instruction: {summary['best_instruction']!r}")
    print(f"outputs: {out / 'history.jsonl'}, {out / 'result.json'}, {out / 'progress_calls.png'}")
    return 0


# -- paper-runs, hyperband-schedule --------------------------------------------------------------------------

def run_paper_runs(args: argparse.Namespace) -> int:
    from igft.optimizers.paper_runs import best_objectives, import_paper_runs

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
