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
from typing import Any

from igft.errors import IgftError

RUN_FILE = "run.json"
TOY_DATA = "toy"
# Defaults of every optimize option; run.json of a recorded run overrides them, explicit flags override both.
DEFAULTS: dict[str, Any] = {
    "llm": "local:smollm2", "embedder": "local:minilm", "data": TOY_DATA, "max_conversations": None,
    "objective": "AMI_x_NCA", "seed": 0, "concurrency": 1, "feedback_on": None, "train_fraction": 0.2, "train_r": 2,
    "temperature": 0.7, "meta_max_tokens": 400, "r": 25, "iterations": 10, "children": 1, "direct_rewrite": False,
    "population": 5, "phases": None, "feedback_rounds": 2, "global_rounds": 4,
    "semantic_rounds": 1, "tolerance": 1, "min_gain": 0.0, "pairing_weight": 0.5, "lamarckian_examples": 10,
    "hours": 1.0, "eta": 2, "r_min": 4, "r_max": 25, "n_min": 1, "variant": "paper", "brackets": None,
    "gifa_max_tokens": None, "gifa_tokens_per_message": None, "gifa_max_retries": None,
    "max_calls": None, "max_tokens": None, "max_dollars": None, "max_trials": None,
}
ALGO_DIRS = {"random": "random", "greedy": "greedy", "see": "see", "hyperband-see": "hyperband_see"}


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

def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """Flags over the cassette's run.json over DEFAULTS; plus mode and cassette paths."""
    from igft.resources import simulated_runs_dir

    cassette = Path(args.cassette) if args.cassette else None
    if cassette is None and not args.data:
        cassette = simulated_runs_dir() / ALGO_DIRS[args.algo]
    mode = args.mode or ("live" if args.data else "replay")
    if mode != "live" and cassette is None:
        raise IgftError(f"--mode {mode} needs --cassette DIR")
    recorded: dict[str, Any] = {}
    if cassette is not None:
        run_file = cassette / RUN_FILE
        if mode == "replay" and not (cassette / "lm.jsonl").exists():
            raise IgftError(f"no recorded run at {cassette}; record one with --mode record --cassette {cassette}")
        if run_file.is_file():
            try:
                recorded = json.loads(run_file.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise IgftError(f"cannot read {run_file}: {err}; fix or delete it") from err
            if recorded.get("algo") not in (None, args.algo):
                raise IgftError(f"{cassette} holds a {recorded['algo']} run, not {args.algo}; pass --cassette of a {args.algo} run")
    options = dict(DEFAULTS)
    options.update({k: v for k, v in recorded.get("options", {}).items() if k in DEFAULTS})
    options.update({k: v for k, v in vars(args).items() if k in DEFAULTS and v is not None})
    if options["phases"] is None:  # Hyperband-SEE's rounds are the paper's SEE: initialisation + feedback
        options["phases"] = "init,feedback" if args.algo == "hyperband-see" else "init,feedback,global,semantic"
    if options["feedback_on"] is None:
        options["feedback_on"] = "train" if args.algo in ("see", "hyperband-see") else "validation"
    return {"algo": args.algo, "mode": mode, "cassette": cassette, "options": options}


def backbone_config(algo: str, o: dict[str, Any]):
    """The backbone config dataclass built from resolved options."""
    from igft.optimizers import GreedySearchConfig, HyperbandConfig, RandomSearchConfig, SEEConfig

    if algo in ("random", "greedy"):
        cls = RandomSearchConfig if algo == "random" else GreedySearchConfig
        return cls(iterations=o["iterations"], children_per_iteration=o["children"],
                   lagged_feedback=not o["direct_rewrite"], r=o["r"])
    see = SEEConfig(population_size=o["population"], r=o["r"], phases=tuple(p.strip() for p in o["phases"].split(",") if p.strip()),
                    lamarckian_examples=o["lamarckian_examples"], feedback_rounds=o["feedback_rounds"],
                    lagged_feedback=not o["direct_rewrite"], global_rounds=o["global_rounds"],
                    semantic_rounds=o["semantic_rounds"], tolerance=o["tolerance"], min_gain=o["min_gain"],
                    pairing_weight=o["pairing_weight"])
    if algo == "see":
        return see
    return HyperbandConfig(hours=o["hours"], eta=o["eta"], r_min=o["r_min"], r_max=o["r_max"], n_min=o["n_min"],
                           variant=o["variant"], brackets=o["brackets"], see=see)


def _gifa_config(o: dict[str, Any]):
    from igft.gifa import GifaConfig

    changes = {name: o[f"gifa_{name}"] for name in ("max_tokens", "tokens_per_message", "max_retries") if o[f"gifa_{name}"] is not None}
    return GifaConfig(**changes)


def run_optimize(args: argparse.Namespace) -> int:
    from igft.data import load_conversations
    from igft.llm.factory import build_embedder, build_lm
    from igft.llm.usage import UsageMeter
    from igft.optimizers import SearchBudget, SearchSettings, run_search
    from igft.resources import toy_conversations_path

    settings = resolve(args)
    o, mode, cassette = settings["options"], settings["mode"], settings["cassette"]
    data_path = toy_conversations_path() if o["data"] == TOY_DATA else Path(o["data"])
    if not data_path.exists():
        raise IgftError(f"data file {data_path} does not exist; pass --data CSV")
    dataset = load_conversations(data_path)
    if o["max_conversations"]:
        dataset = dataset.head(int(o["max_conversations"]))
    meter = UsageMeter()
    lm_cassette = cassette / "lm.jsonl" if cassette else None
    emb_cassette = cassette / "embeddings.jsonl" if cassette else None
    lm = build_lm(o["llm"], mode=mode, cassette=lm_cassette, usage=meter)
    embedder = build_embedder(o["embedder"], mode=mode, cassette=emb_cassette, usage=meter)
    if mode == "record" and cassette is not None:
        cassette.mkdir(parents=True, exist_ok=True)
        (cassette / RUN_FILE).write_text(json.dumps({"algo": args.algo, "options": o}, indent=2) + "\n", encoding="utf-8")
    budget = SearchBudget(max_calls=o["max_calls"], max_tokens=o["max_tokens"], max_dollars=o["max_dollars"],
                          max_trials=o["max_trials"], dollars_fn=lambda: meter.snapshot()["dollars"])
    search_settings = SearchSettings(objective=o["objective"], seed=o["seed"], concurrency=o["concurrency"],
                                     feedback_on=o["feedback_on"], train_fraction=o["train_fraction"], train_r=o["train_r"],
                                     temperature=o["temperature"], max_tokens=o["meta_max_tokens"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = run_search(args.algo, dataset, lm, embedder, config=backbone_config(args.algo, o), settings=search_settings,
                        budget=budget, gifa_config=_gifa_config(o), history_path=out / "history.jsonl",
                        resume=not args.no_resume, usage=meter)
    result.save(out)
    summary = result.summary()
    best = summary["best_objective"]
    print(f"{args.algo}: {summary['trials']} trials, best {o['objective']} "
          f"{'n/a' if best is None else f'{best:.4f}'} (trial {summary['best_trial']}); "
          f"LLM calls {summary['llm_calls']} (live {meter.snapshot()['live_calls']}), tokens {summary['tokens']} [mode {mode}]")
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
