"""Hyperband-SEE: SEE runs on growing numbers of validation conversations.

`paper_schedule` is the paper's scheduler (see DESIGN.md): for each eta, rounds, rung sizes R_i,
multiplicities and populations x_i fitted into a budget of hours * 3600 / 4 evaluations. Bracket b
runs m_b rounds; round r uses population x_(r+b) on R_(r+b) conversations; round 0 starts from
Lamarckian induction, each later round is SEE whose population is warm-started with the previous round's best `int(pop / 2)`
(the paper's best half; Lamarckian induction fills the rest), or with `warm_keep="eta"` the previous
round's best 1/eta.
`li_schedule` is the standard Hyperband of Li et al.: brackets of equal budget, each a successive
halving: n Lamarckian candidates scored at the smallest r, then the best 1/eta survivors re-scored at
the next r, with no new children inside a bracket.
Lower-rung scores decide promotion only; the search's best is chosen among the trials scored at the
largest r it ran (History.best_at_full_resource), so a lucky score on few conversations never wins.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Sequence

from igft.errors import IgftError
from igft.optimizers.runner import SearchContext
from igft.optimizers.see import SEEConfig, see_search
from igft.optimizers.trial import Trial

SECONDS_PER_EVALUATION = 4  # the paper's budget unit: one evaluation ~ 4 s


class ScheduleError(IgftError):
    """Schedule parameters that cannot work (e.g. r_max below r_min)."""


def _log_floor(value: float, base: int) -> int:
    """floor(log_base(value)), exact for powers (float log would give 1.9999 for log_5(25))."""
    n = 0
    while base ** (n + 1) <= value + 1e-9:
        n += 1
    return n


def paper_schedule(hours: float, etas: Sequence[int] = (2, 3, 5), r_min: int = 4, r_max: int = 25,
                   n_min: int = 1) -> list[dict]:
    """The paper's schedules, one per eta whose smallest population reaches n_min."""
    if r_min < 1 or r_max < r_min:
        raise ScheduleError(f"need 1 <= r_min <= r_max, got r_min={r_min} r_max={r_max}")
    budget = int(hours * 3600 / SECONDS_PER_EVALUATION)
    out = []
    for eta in etas:
        if eta < 2:
            raise ScheduleError(f"eta must be >= 2, got {eta}")
        rounds = _log_floor(r_max / r_min, eta) + 1
        r_list = [r_min * eta ** i for i in range(rounds)]
        multiplicity = [rounds - i for i in range(rounds)]
        coeffs = [4 * multiplicity[i] * r_list[i] * eta ** (rounds - 1 - i) for i in range(rounds)]
        x_last = budget // sum(coeffs)
        if x_last < n_min:
            continue
        x_list = [x_last * eta ** (rounds - 1 - i) for i in range(rounds)]
        total = sum(c * x_last for c in coeffs)
        out.append({"eta": eta, "rounds": rounds, "x_list": x_list, "R_list": r_list,
                    "multiplicity": multiplicity, "total_cost": total, "budget": budget})
    return out


def li_schedule(r_max: int, eta: int = 3, r_min: int = 1) -> list[list[dict]]:
    """Standard Hyperband (Li et al. 2018): brackets s = s_max..0 with equal budgets (s_max+1)*R.

    Each bracket is a list of successive-halving rungs {"n": configurations, "r": conversations}.
    """
    if r_min < 1 or r_max < r_min or eta < 2:
        raise ScheduleError(f"need eta >= 2 and 1 <= r_min <= r_max, got eta={eta} r_min={r_min} r_max={r_max}")
    s_max = _log_floor(r_max / r_min, eta)
    budget = (s_max + 1) * r_max
    brackets = []
    for s in range(s_max, -1, -1):
        n = math.ceil(budget / r_max * eta ** s / (s + 1))
        r = r_max * eta ** (-s)
        rungs = [{"n": int(n * eta ** (-i)), "r": max(r_min, int(round(r * eta ** i)))} for i in range(s + 1)]
        brackets.append([rung for rung in rungs if rung["n"] >= 1])
    return brackets


@dataclass
class HyperbandConfig:
    hours: float = field(default=1.0, metadata={"help": "budget in hours (the paper: 4 s per evaluation)"})
    eta: int = field(default=2, metadata={"help": "reduction factor"})
    r_min: int = field(default=4, metadata={"help": "fewest validation conversations (first rung)"})
    r_max: int = field(default=25, metadata={"help": "most validation conversations"})
    n_min: int = field(default=1, metadata={"help": "smallest population allowed in the last rung"})
    variant: str = field(default="paper", metadata={"help": "paper (the paper's schedule, SEE rounds) or li (Li et al.'s Hyperband: successive halving)",
                                                    "choices": ("paper", "li")})
    brackets: int | None = field(default=None, metadata={"help": "run only the first N brackets (small budgets)"})
    warm_keep: str = field(default="half", metadata={"help": "paper variant: a round is warm-started from the best half of the previous one (the paper) or its best 1/eta",
                                                     "choices": ("half", "eta")})
    see: SEEConfig = field(default_factory=lambda: SEEConfig(phases=("init", "feedback")),
                           metadata={"help": "SEE settings of each round (population and r are set by the schedule)"})


def hyperband_rounds(config: HyperbandConfig) -> list[list[tuple[int, int]]]:
    """Per bracket, the list of (population, conversations) of its rounds."""
    if config.variant == "paper":
        schedules = paper_schedule(config.hours, [config.eta], config.r_min, config.r_max, config.n_min)
        if not schedules:
            raise ScheduleError(f"{config.hours} h is too small for eta={config.eta}, r_min={config.r_min}, "
                                f"r_max={config.r_max}: raise --hours or lower --r-max")
        s = schedules[0]
        brackets = [[(s["x_list"][r + b], s["R_list"][r + b]) for r in range(s["multiplicity"][b])]
                    for b in range(s["rounds"])]
    elif config.variant == "li":
        brackets = [[(rung["n"], rung["r"]) for rung in bracket] for bracket in li_schedule(config.r_max, config.eta, config.r_min)]
    else:
        raise ScheduleError(f"unknown Hyperband variant {config.variant!r}; use paper or li")
    return brackets[: config.brackets] if config.brackets else brackets


def hyperband_search(ctx: SearchContext, config: HyperbandConfig | None = None, *, embedder=None) -> list[dict]:
    """Run Hyperband-SEE; trials are recorded in ctx.history (meta: bracket, round). Returns per-round summaries."""
    config = config or HyperbandConfig()
    if config.warm_keep not in ("half", "eta"):
        raise ScheduleError(f"warm_keep must be half or eta, got {config.warm_keep!r}")
    if config.variant == "li":
        return _successive_halving(ctx, config, embedder)
    summaries = []
    for b, rounds in enumerate(hyperband_rounds(config)):
        previous: list[Trial] = []
        previous_population = 0
        for r_index, (population, conversations) in enumerate(rounds):
            if not ctx.check_trials_left():
                return summaries
            # Promotion uses the lower rung's scores (already in the history); the kept ones are rescored at the
            # new rung, Lamarckian induction fills the rest of the population.
            # half: the paper's int(pop / 2) best of the previous round, Lamarckian induction makes the other half;
            # eta: the previous round's best 1/eta (with the paper's schedule, the whole new population).
            keep = population // 2 if config.warm_keep == "half" else previous_population // config.eta
            warm = tuple(t.instruction for t in _distinct_best(previous, min(max(keep, 1), population))) if r_index else ()
            see_config = replace(config.see, population_size=population, r=conversations, warm_start=warm)
            start = len(ctx.history)
            final = see_search(ctx, see_config, embedder=embedder, prefix=f"hyperband/b{b}/r{r_index}",
                               meta={"bracket": b, "round": r_index, "population": population})
            round_trials = ctx.history.trials[start:]
            previous = round_trials or final
            previous_population = population
            best = max((t.objective for t in round_trials), default=float("nan"))
            summaries.append({"bracket": b, "round": r_index, "population": population, "conversations": conversations,
                              "trials": len(round_trials), "best": best})
    return summaries


def _successive_halving(ctx: SearchContext, config: HyperbandConfig, embedder) -> list[dict]:
    """Li et al.'s Hyperband: per bracket, n induced candidates at the first r, then survivors re-scored."""
    from igft.optimizers.runner import Candidate

    summaries = []
    for b, rungs in enumerate(hyperband_rounds(config)):
        survivors: list[Trial] = []
        for i, (n, conversations) in enumerate(rungs):
            if not ctx.check_trials_left():
                return summaries
            meta = {"bracket": b, "round": i, "population": n}
            prefix = f"hyperband/b{b}/r{i}"
            if i == 0:
                see_config = replace(config.see, population_size=n, r=conversations, warm_start=(), phases=("init",))
                trials = see_search(ctx, see_config, embedder=embedder, prefix=prefix, meta=meta)
            else:
                # No new children inside a bracket: the best n of the previous rung, scored again on more data.
                batch = [Candidate(slot=f"{prefix}/rescore/{k}", phase="rescore", step=i, generate=t.instruction,
                                   r=conversations, parent_ids=[t.id], operator="rescore", meta=dict(meta))
                         for k, t in enumerate(_distinct_best(survivors, n))]
                trials = ctx.evaluate(batch)
            survivors = trials
            summaries.append({"bracket": b, "round": i, "population": n, "conversations": conversations,
                              "trials": len(trials), "best": max((t.objective for t in trials), default=float("nan"))})
    return summaries


def _distinct_best(trials: Sequence[Trial], k: int) -> list[Trial]:
    chosen, seen = [], set()
    for t in sorted(trials, key=lambda t: (-t.objective, t.id)):
        if t.instruction not in seen:
            seen.add(t.instruction)
            chosen.append(t)
    return chosen[:k]
