"""Run one backbone the way `igft optimize` does: options from overrides over a cassette's run.json over DEFAULTS.

Shared by the CLI, `igft demo` and the notebooks, so a replay from any of them sends exactly the
requests that were recorded.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from igft.errors import IgftError
from igft.optimizers.results import SearchResult

RUN_FILE = "run.json"
TOY_DATA = "toy"
# Options of the run itself (models, data); every search option comes from the config dataclasses
# (igft.optimizers.options). run.json of a recorded run overrides both, explicit flags override that.
# gifa_llm None: GIFA labels with llm too. A separate one gets its own cassette (a cassette holds one model).
RUN_DEFAULTS: dict[str, Any] = {"llm": "local:smollm2", "gifa_llm": None, "embedder": "local:minilm", "data": TOY_DATA,
                                "max_conversations": None}
GIFA_LM_CASSETTE = "gifa_lm.jsonl"
ALGO_DIRS = {"random": "random", "greedy": "greedy", "see": "see", "hyperband-see": "hyperband_see"}


def option_names() -> set[str]:
    from igft.optimizers.options import options

    return set(RUN_DEFAULTS) | set(options())


@dataclass
class OptimizeRequest:
    """One search. None means: the cassette's recorded value, else DEFAULTS."""

    algo: str
    out: str
    data: str | None = None
    mode: str | None = None
    cassette: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # any RUN_DEFAULTS key or igft.optimizers.options name
    resume: bool = True


@dataclass
class OptimizeRun:
    result: SearchResult
    settings: dict[str, Any]
    usage: dict[str, Any]


def resolve(request: OptimizeRequest) -> dict[str, Any]:
    """Overrides over the cassette's run.json over the library defaults; plus mode and cassette paths."""
    from igft.gifa.run import read_run_file
    from igft.optimizers import options as search_options
    from igft.resources import simulated_runs_dir

    cassette = Path(request.cassette) if request.cassette else None
    if cassette is None and not request.data:
        cassette = simulated_runs_dir() / ALGO_DIRS[request.algo]
    mode = request.mode or ("live" if request.data else "replay")
    if mode != "live" and cassette is None:
        raise IgftError(f"--mode {mode} needs --cassette DIR")
    recorded: dict[str, Any] = {}
    if cassette is not None:
        run_file = cassette / RUN_FILE
        if mode == "replay" and not (cassette / "lm.jsonl").exists():
            raise IgftError(f"no recorded run at {cassette}; record one with --mode record --cassette {cassette}")
        recorded = read_run_file(run_file)
        if recorded.get("algo") not in (None, request.algo):
            raise IgftError(f"{cassette} holds a {recorded['algo']} run, not {request.algo}; pass --cassette of a {request.algo} run")
    valid = option_names()
    unknown = sorted(set(request.overrides) - valid)
    if unknown:
        raise IgftError(f"unknown optimize option(s) {unknown}; valid: {sorted(valid)}")
    options = {**RUN_DEFAULTS, **search_options.defaults(request.algo)}
    # A run.json from an older igft may hold options that no longer exist: they are ignored, not guessed.
    options.update({k: v for k, v in recorded.get("options", {}).items() if k in valid})
    if request.data:
        options["data"] = request.data
    options.update({k: v for k, v in request.overrides.items() if v is not None})
    # Kinds, choices and budget signs checked once, whichever source (flag, run.json, pipeline config) set them.
    search = search_options.check({k: v for k, v in options.items() if k not in RUN_DEFAULTS})
    options.update(search)
    return {"algo": request.algo, "mode": mode, "cassette": cassette, "options": options,
            "recorded_trials": recorded.get("recorded_trials")}


def backbone_config(algo: str, o: dict[str, Any]):
    """The backbone config dataclass built from resolved options."""
    from igft.optimizers import HyperbandConfig, SEEConfig
    from igft.optimizers.iterative import IterativeConfig
    from igft.optimizers.options import build

    if algo in ("random", "greedy"):
        return build(IterativeConfig, o)
    see = build(SEEConfig, o)
    if algo == "see":
        return see
    return build(HyperbandConfig, o, see=see)


def _gifa_config(o: dict[str, Any]):
    from igft.gifa import GifaConfig
    from igft.optimizers.options import build

    return build(GifaConfig, o)


def run_optimize(request: OptimizeRequest) -> OptimizeRun:
    """Run (or replay, or resume) one backbone; write history.jsonl, result.json and plots into request.out."""
    if request.algo not in ALGO_DIRS:
        raise IgftError(f"unknown backbone {request.algo!r}; use one of {', '.join(ALGO_DIRS)}")
    from igft.data import load_conversations
    from igft.llm.factory import build_embedder, build_lm, redacted_spec
    from igft.llm.usage import UsageMeter
    from igft.optimizers import SearchBudget, SearchSettings, run_search
    from igft.resources import toy_conversations_path

    settings = resolve(request)
    o, mode, cassette = settings["options"], settings["mode"], settings["cassette"]
    data_path = toy_conversations_path() if o["data"] == TOY_DATA else Path(o["data"])
    if not data_path.exists():
        raise IgftError(f"data file {data_path} does not exist; pass --data CSV")
    dataset = load_conversations(data_path)
    if o["max_conversations"]:
        dataset = dataset.head(int(o["max_conversations"]))
    meter = UsageMeter()
    from igft.optimizers.budget import LiveBudget, carry_over_usage
    from igft.optimizers.options import build

    # --max-calls / --max-tokens / --max-dollars are live usage of this job in --out, as in `igft label`:
    # one ledger (usage.json) over every rerun; --no-resume starts a new job whose count starts at zero.
    ledger = carry_over_usage(request.out, meter, mode=mode, new_job=not request.resume)
    live = build(LiveBudget, o).client_budget()
    lm_cassette = cassette / "lm.jsonl" if cassette else None
    emb_cassette = cassette / "embeddings.jsonl" if cassette else None
    lm = build_lm(o["llm"], mode=mode, cassette=lm_cassette, usage=meter, budget=live)
    labeler_lm = None
    if o["gifa_llm"] and o["gifa_llm"] != o["llm"]:
        # One meter and one live budget over both models: the caps count every call of the search.
        labeler_lm = build_lm(o["gifa_llm"], mode=mode, cassette=cassette / GIFA_LM_CASSETTE if cassette else None,
                              usage=meter, budget=live)
    # The embedder is metered (its live tokens and $ count) but not capped itself: SEE embeds instructions
    # outside a trial, where a refusal could not stop the search cleanly; the next LLM call checks the cap.
    embedder = build_embedder(o["embedder"], mode=mode, cassette=emb_cassette, usage=meter)
    if mode == "record" and cassette is not None:
        cassette.mkdir(parents=True, exist_ok=True)
        _write_run_file(cassette, {"algo": request.algo, "options": o})
    budget = build(SearchBudget, o)
    recorded_trials = settings.get("recorded_trials")
    if mode == "replay" and recorded_trials is not None and (budget.max_trials is None or budget.max_trials > recorded_trials):
        # The recording stopped on a live cap, which a replay (no live call) never hits: stop where it did.
        budget.max_trials = int(recorded_trials)
    search_settings = build(SearchSettings, o)
    out = Path(request.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        result = run_search(request.algo, dataset, lm, embedder, config=backbone_config(request.algo, o),
                            settings=search_settings, budget=budget, gifa_config=_gifa_config(o), labeler_lm=labeler_lm,
                            history_path=out / "history.jsonl", resume=request.resume, usage=meter)
    finally:
        ledger.finish()
    if mode == "record" and cassette is not None and live is not None:
        # Only a live cap stops a CLI search other than the trial cap (SearchBudget's call caps are library-only).
        if result.stopped and not result.stopped.startswith("trial"):
            _write_run_file(cassette, {"algo": request.algo, "options": o,
                                       "recorded_trials": len(result.history.search_trials())})
    result.models = {"llm": redacted_spec(o["llm"]), "gifa_llm": redacted_spec(o["gifa_llm"] or o["llm"])}
    result.usage["job"] = ledger.totals()
    if ledger.job > 1 or len(ledger.runs()) > 1:
        result.usage["folder"] = ledger.totals(all_jobs=True)
    result.save(out)
    return OptimizeRun(result, settings, meter.snapshot())


def _write_run_file(cassette: Path, run: dict) -> None:
    (cassette / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
