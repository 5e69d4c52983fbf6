"""The loop random and greedy search share, and the feedback operator SEE reuses.

Iteration 0 scores the seed instruction; each later iteration picks parents (the backbone's rule),
asks the optimizer LLM for feedback on a parent's report and then to apply it (lagged feedback: two
calls), or to rewrite the parent directly (one call), and scores the child.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

from igft.optimizers import prompts
from igft.optimizers.runner import Candidate, CandidateTools, SearchContext
from igft.optimizers.trial import Trial

def seed_instruction() -> str:
    """GIFA's own seed instruction (iteration 0 of every search)."""
    from igft.gifa.prompts import SEED_INSTRUCTION

    return SEED_INSTRUCTION


@dataclass
class IterativeConfig:
    iterations: int = field(default=10, metadata={"help": "iterations including iteration 0 (the seed instruction)"})
    children_per_iteration: int = field(default=1, metadata={"help": "children per iteration (the paper: 1); >1 lets them be scored in parallel"})
    lagged_feedback: bool = field(default=True, metadata={"help": "feedback then apply-feedback (2 calls) instead of one direct rewrite"})
    r: int = field(default=25, metadata={"help": "validation conversations each instruction is scored on"})
    seed_instruction: str | None = field(default=None, metadata={"help": "starting instruction (default: GIFA's seed instruction)"})


def feedback_child(parent: Trial, lagged: bool) -> Callable[[CandidateTools], str]:
    """Generate function: improve `parent` from its report (feedback + apply, or a direct rewrite)."""

    def generate(tools: CandidateTools) -> str:
        report = tools.feedback_report(parent)  # the parent's train-split report
        if lagged:
            feedback = tools.ask(prompts.feedback_prompt(parent.instruction, report, tools.feedback_gold))
            answer = tools.ask(prompts.apply_feedback_prompt(parent.instruction, feedback))
        else:
            answer = tools.ask(prompts.direct_rewrite_prompt(parent.instruction, report, tools.feedback_gold))
        return prompts.extract_instruction(answer, fallback=parent.instruction)

    return generate


ParentRule = Callable[[list[Trial], random.Random], Trial]


def iterative_search(ctx: SearchContext, config: IterativeConfig, choose_parent: ParentRule, name: str) -> None:
    """Run the loop; trials land in ctx.history. Stops early when the budget is spent."""
    seed = config.seed_instruction or seed_instruction()
    ctx.evaluate([Candidate(slot=f"{name}/0/0", phase="seed", step=0, generate=seed, r=config.r, operator="seed")])
    for step in range(1, config.iterations):
        if not ctx.check_trials_left() or not len(ctx.history):
            return
        batch = []
        for k in range(config.children_per_iteration):
            # Parents are drawn from the control-flow RNG in a fixed order, so a resumed run draws the same.
            parent = choose_parent(list(ctx.history.trials), ctx.rng)
            batch.append(Candidate(slot=f"{name}/{step}/{k}", phase="feedback" if config.lagged_feedback else "rewrite",
                                   step=step, generate=feedback_child(parent, config.lagged_feedback), r=config.r,
                                   parent_ids=[parent.id], feedback_parent=parent,
                                   operator="lagged_feedback" if config.lagged_feedback else "direct_rewrite"))
        ctx.evaluate(batch)
