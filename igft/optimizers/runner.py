"""The machinery every backbone shares: turn candidate descriptions into scored, recorded trials.

A backbone describes a batch of independent candidates (slot, parent ids, a function generating the
instruction with the optimizer LLM); `SearchContext.evaluate` then
1. reuses trials an earlier run stored under the same slots (resume: no LLM call, no rescoring) and
   refills the objective caches from them, so a resumed search makes no call an uninterrupted one
   would not make,
2. scores on the train split the parents whose feedback the batch needs (feedback prompts only ever
   show train-split messages),
3. generates the new instructions in parallel, each with its own metered LM, its own seeded RNG and a
   request seed derived from its slot (so its cassette keys never collide with another candidate's),
4. scores each distinct (instruction, r) once, charged to the first candidate in batch order,
5. appends trials to the history in batch order.
Nothing in 2-5 depends on which thread finishes first, so histories are identical at any concurrency.
After the search, `score_final` scores the chosen instruction and the seed instruction on the test
split (and the seed on validation), once, as "final" trials of the same history.
"""
from __future__ import annotations

import hashlib
import logging
import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable

from igft.llm.base import CompletionRequest
from igft.optimizers.budget import MeteredLM, SearchBudget, TrialCost, budget_errors
from igft.optimizers.history import FINAL_PHASE, History
from igft.optimizers.objective import Objective, Score
from igft.optimizers.parallel import ordered_map
from igft.optimizers.trial import Trial

logger = logging.getLogger(__name__)

Generate = Callable[["CandidateTools"], str]


@dataclass
class Candidate:
    """A trial to be: where it sits (slot, phase, step), how it is made (generate) and how much data scores it (r)."""

    slot: str
    phase: str
    step: int
    generate: Generate | str
    r: int
    parent_ids: list[int] = field(default_factory=list)
    operator: str = ""
    feedback_parent: Trial | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class CandidateTools:
    """What a candidate's generate function may use: its metered LM, its RNG and the context."""

    lm: MeteredLM
    rng: random.Random
    request_seed: int
    context: "SearchContext"

    def ask(self, prompt: str) -> str:
        ctx = self.context
        request = CompletionRequest.from_prompt(prompt, temperature=ctx.temperature, max_tokens=ctx.max_tokens,
                                                seed=self.request_seed)
        return self.lm.complete(request).text

    def feedback_report(self, parent: Trial) -> dict:
        return self.context.feedback_report(parent)

    @property
    def feedback_gold(self) -> str:
        return self.context.feedback_gold


@dataclass
class SearchContext:
    """Everything a backbone needs: optimizer LM, objective(s), history, budget, concurrency, seed."""

    lm: Any
    objective: Objective
    history: History
    budget: SearchBudget = field(default_factory=SearchBudget)
    labeler_lm: Any = None
    train_objective: Objective | None = None
    train_r: int | None = None  # train conversations labeled per feedback report (None: the whole train split)
    concurrency: int = 1
    seed: int = 0
    temperature: float = 0.7
    max_tokens: int = 400
    feedback_gold: str = "examples"
    stopped: str | None = None

    def __post_init__(self) -> None:
        self.labeler_lm = self.labeler_lm if self.labeler_lm is not None else self.lm
        if self.train_objective is not None:
            self.train_r = min(self.train_r or self.train_objective.max_r, self.train_objective.max_r)
        self.rng = random.Random(self.seed)  # control-flow randomness (parent choice), drawn in a fixed order

    # -- helpers for backbones -------------------------------------------------------------------------
    def slot_seed(self, slot: str) -> int:
        return int(hashlib.sha256(f"{self.seed}/{slot}".encode()).hexdigest()[:8], 16)

    def feedback_report(self, parent: Trial) -> dict:
        """The report feedback prompts are built from: the parent's train-subset report when a train
        objective is set (scored beforehand by `evaluate`), else its validation report."""
        if self.train_objective is not None:
            hit = self.train_objective.cached(parent.instruction, self.train_r)
            if hit is not None:
                return hit.report
        return parent.report

    # -- the pipeline ------------------------------------------------------------------------------------
    def evaluate(self, candidates: list[Candidate]) -> list[Trial]:
        """Score a batch of independent candidates; returns the trials recorded (fewer when the budget ran out)."""
        if self.stopped:
            return []
        if self.budget.max_trials is not None:
            # Never generate candidates the trial budget could not record.
            left = self.budget.max_trials - self.budget.trials
            if left < len(candidates):
                candidates = candidates[: max(left, 0)]
                self._stop(f"trial budget of {self.budget.max_trials} spent")
        trials: list[Trial | None] = [None] * len(candidates)
        fresh: list[int] = []
        for index, cand in enumerate(candidates):
            previous = self.history.resumable(cand.slot)
            if previous is not None:
                trials[index] = previous
                self._refill(previous)
            else:
                fresh.append(index)
        # Reused trials keep their recorded cost, which counts against this run's budget too.
        costs = {i: TrialCost() for i in fresh}
        try:
            self._score_feedback_parents([candidates[i] for i in fresh], [costs[i] for i in fresh])
            instructions = self._generate(candidates, fresh, costs)
        except budget_errors() as exc:
            self._stop(str(exc))
            return self._commit(candidates, trials, {}, costs, limit=_first_fresh(fresh, len(candidates)))
        return self._score_and_commit(candidates, trials, instructions, costs)

    def _refill(self, trial: Trial, objective: Objective | None = None) -> None:
        """Put a reused trial's scores back into the caches an uninterrupted run would hold."""
        objective = objective or self.objective
        if math.isfinite(trial.objective) or trial.report:
            objective.remember(trial.instruction, trial.r, Score(trial.objective, trial.report, trial.labels))
        fb = trial.feedback
        if fb and self.train_objective is not None:
            self.train_objective.remember(fb["instruction"], int(fb["r"]),
                                          Score(float(fb["objective"]), fb["report"], []))

    def _feedback_record(self, cand: Candidate) -> dict:
        if cand.feedback_parent is None or self.train_objective is None:
            return {}
        hit = self.train_objective.cached(cand.feedback_parent.instruction, self.train_r)
        if hit is None:
            return {}
        return {"instruction": cand.feedback_parent.instruction, "r": min(self.train_r, self.train_objective.max_r),
                "objective": hit.objective, "report": hit.report}

    def _score_feedback_parents(self, candidates: list[Candidate], costs: list[TrialCost]) -> None:
        if self.train_objective is None:
            return
        owners: dict[str, int] = {}
        for k, cand in enumerate(candidates):
            parent = cand.feedback_parent
            if parent is not None and parent.instruction not in owners and \
                    self.train_objective.cached(parent.instruction, self.train_r) is None:
                owners[parent.instruction] = k
        jobs = [(_bind_score(self.train_objective, text, self.train_r, MeteredLM(self.labeler_lm, costs[k], self.budget)))
                for text, k in owners.items()]
        for _, result in ordered_map(jobs, self.concurrency):
            if isinstance(result, BaseException):
                raise result

    def _generate(self, candidates, fresh, costs) -> dict[int, str]:
        jobs = []
        for i in fresh:
            cand = candidates[i]
            if isinstance(cand.generate, str):
                jobs.append(_constant(cand.generate))
                continue
            tools = CandidateTools(MeteredLM(self.lm, costs[i], self.budget), random.Random(self.slot_seed(cand.slot)),
                                   self.slot_seed(cand.slot), self)
            jobs.append(_bind_generate(cand.generate, tools))
        out: dict[int, str] = {}
        for k, result in ordered_map(jobs, self.concurrency):
            if isinstance(result, BaseException):
                raise result
            out[fresh[k]] = result
        return out

    def _score_and_commit(self, candidates, trials, instructions, costs) -> list[Trial]:
        owners: dict[tuple[str, int], int] = {}
        for i in sorted(instructions):
            key = (instructions[i], min(candidates[i].r, self.objective.max_r))
            if key not in owners and self.objective.cached(*key) is None:
                owners[key] = i
        owner_list = list(owners.items())
        jobs = [_bind_score(self.objective, key[0], key[1], MeteredLM(self.labeler_lm, costs[i], self.budget))
                for key, i in owner_list]
        scores: dict[int, Score] = {}
        failure: BaseException | None = None
        limit = len(candidates)
        for k, result in ordered_map(jobs, self.concurrency):
            if isinstance(result, BaseException):
                failure = result
                limit = owner_list[k][1]
                break
            scores[owner_list[k][1]] = result
        committed = self._commit(candidates, trials, {i: (instructions[i], scores.get(i)) for i in instructions},
                                 costs, limit=limit)
        if isinstance(failure, budget_errors()):
            self._stop(str(failure))
        elif failure is not None:
            raise failure
        return committed

    def _commit(self, candidates, trials, made: dict, costs, limit: int) -> list[Trial]:
        """Append, in batch order, every trial before `limit` (reused ones and freshly scored ones)."""
        committed = []
        for index, cand in enumerate(candidates[:limit]):
            if trials[index] is not None:  # reused from an earlier run
                trial = trials[index]
                trial.id = self.history.next_id()
                self.budget.add_spent(trial.calls, trial.tokens)
            elif index in made:
                instruction, score = made[index]
                cached = score is None
                if cached:
                    score = self.objective.cached(instruction, cand.r)
                trial = Trial(id=self.history.next_id(), slot=cand.slot, phase=cand.phase, step=cand.step,
                              instruction=instruction, parent_ids=list(cand.parent_ids), operator=cand.operator,
                              r=min(cand.r, self.objective.max_r), objective=score.objective, report=score.report,
                              calls=costs[index].calls, tokens=costs[index].tokens, cached=cached,
                              labels=score.labels, meta=dict(cand.meta), feedback=self._feedback_record(cand))
            else:
                break
            self.history.append(trial)
            self.budget.count_trial()
            committed.append(trial)
        return committed

    def score_final(self, items: list[tuple[str, str, str, Objective, int]]) -> list[Trial]:
        """Score (name, operator, instruction, objective, r) items once each, after the search.

        They are charged to the search budget but never stopped by it (a spent budget must not leave a
        search without its test figure; the caller lifts the live caps too, see budget.past_live_caps);
        their cost is recorded on the trials, and they are appended as FINAL_PHASE trials in the given order.
        The slot names the instruction too, so a resumed search that found a better one scores that.
        """
        out = []
        for name, operator, instruction, objective, r in items:
            slot = f"{FINAL_PHASE}/{name}/{hashlib.sha256(instruction.encode()).hexdigest()[:12]}"
            previous = self.history.resumable(slot)
            if previous is not None:
                self._refill(previous, objective)
                previous.id = self.history.next_id()
                self.history.append(previous)
                out.append(previous)
                continue
            cost = TrialCost()
            cached = objective.cached(instruction, r)
            score = cached or objective.score(instruction, r, MeteredLM(self.labeler_lm, cost, self.budget, enforce=False))
            trial = Trial(id=self.history.next_id(), slot=slot, phase=FINAL_PHASE, step=0, instruction=instruction,
                          operator=operator, r=min(r, objective.max_r), objective=score.objective, report=score.report,
                          calls=cost.calls, tokens=cost.tokens, cached=cached is not None, labels=score.labels,
                          split=objective.name)
            self.history.append(trial)
            out.append(trial)
        return out

    def _stop(self, reason: str) -> None:
        if not self.stopped:
            logger.info("search stopped: %s", reason)
            self.stopped = reason

    def check_trials_left(self) -> bool:
        """False (and the search marked stopped) when no further trial may start."""
        reason = self.budget.exhausted_reason()
        if reason:
            self._stop(reason)
        return not self.stopped


def _first_fresh(fresh: list[int], default: int) -> int:
    return fresh[0] if fresh else default


def _constant(text: str):
    return lambda: text


def _bind_generate(generate: Generate, tools: CandidateTools):
    return lambda: generate(tools)


def _bind_score(objective: Objective, instruction: str, r: int, lm):
    return lambda: objective.score(instruction, r, lm)
