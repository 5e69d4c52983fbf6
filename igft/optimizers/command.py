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



@dataclass
class OptimizeRequest:
    """One search. None means: the cassette's recorded value, else DEFAULTS."""

    algo: str
    out: str
    data: str | None = None
    mode: str | None = None
    cassette: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # any DEFAULTS key
    resume: bool = True


@dataclass
class OptimizeRun:
    result: SearchResult
    settings: dict[str, Any]
    usage: dict[str, Any]


def resolve(request: OptimizeRequest) -> dict[str, Any]:
    """Overrides over the cassette's run.json over DEFAULTS; plus mode and cassette paths."""
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
        if run_file.is_file():
            try:
                recorded = json.loads(run_file.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise IgftError(f"cannot read {run_file}: {err}; fix or delete it") from err
            if recorded.get("algo") not in (None, request.algo):
                raise IgftError(f"{cassette} holds a {recorded['algo']} run, not {request.algo}; pass --cassette of a {request.algo} run")
    options = dict(DEFAULTS)
    options.update({k: v for k, v in recorded.get("options", {}).items() if k in DEFAULTS})
    unknown = sorted(set(request.overrides) - set(DEFAULTS))
    if unknown:
        raise IgftError(f"unknown optimize option(s) {unknown}; valid: {sorted(DEFAULTS)}")
    if request.data:
        options["data"] = request.data
    options.update({k: v for k, v in request.overrides.items() if v is not None})
    if options["phases"] is None:  # Hyperband-SEE's rounds are the paper's SEE: initialisation + feedback
        options["phases"] = "init,feedback" if request.algo == "hyperband-see" else "init,feedback,global,semantic"
    if options["feedback_on"] is None:
        options["feedback_on"] = "train" if request.algo in ("see", "hyperband-see") else "validation"
    return {"algo": request.algo, "mode": mode, "cassette": cassette, "options": options}


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


def run_optimize(request: OptimizeRequest) -> OptimizeRun:
    """Run (or replay, or resume) one backbone; write history.jsonl, result.json and plots into request.out."""
    if request.algo not in ALGO_DIRS:
        raise IgftError(f"unknown backbone {request.algo!r}; use one of {', '.join(ALGO_DIRS)}")
    from igft.data import load_conversations
    from igft.llm.factory import build_embedder, build_lm
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
    lm_cassette = cassette / "lm.jsonl" if cassette else None
    emb_cassette = cassette / "embeddings.jsonl" if cassette else None
    lm = build_lm(o["llm"], mode=mode, cassette=lm_cassette, usage=meter)
    embedder = build_embedder(o["embedder"], mode=mode, cassette=emb_cassette, usage=meter)
    if mode == "record" and cassette is not None:
        cassette.mkdir(parents=True, exist_ok=True)
        (cassette / RUN_FILE).write_text(json.dumps({"algo": request.algo, "options": o}, indent=2) + "\n", encoding="utf-8")
    budget = SearchBudget(max_calls=o["max_calls"], max_tokens=o["max_tokens"], max_dollars=o["max_dollars"],
                          max_trials=o["max_trials"], dollars_fn=lambda: meter.snapshot()["dollars"])
    search_settings = SearchSettings(objective=o["objective"], seed=o["seed"], concurrency=o["concurrency"],
                                     feedback_on=o["feedback_on"], train_fraction=o["train_fraction"], train_r=o["train_r"],
                                     temperature=o["temperature"], max_tokens=o["meta_max_tokens"])
    out = Path(request.out)
    out.mkdir(parents=True, exist_ok=True)
    result = run_search(request.algo, dataset, lm, embedder, config=backbone_config(request.algo, o), settings=search_settings,
                        budget=budget, gifa_config=_gifa_config(o), history_path=out / "history.jsonl",
                        resume=request.resume, usage=meter)
    result.save(out)
    return OptimizeRun(result, settings, meter.snapshot())
