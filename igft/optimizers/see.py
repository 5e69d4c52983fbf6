"""SEE (Cho et al., "Strategic Exploration and Exploitation" prompt optimisation), all four phases.

Phase 0 builds the population (Lamarckian induction from sampled train message -> intent pairs, or
warm-start prompts); phase 1 runs K1 rounds of feedback mutation (feedback computed on the train
split); phase 2 runs global evolution rounds cycling through error-wise crossover, semantic-wise
crossover, EDA, EDA-index and semantic mutation (the default 5 rounds run each once); phase 3 runs
semantic-mutation rounds. Every phase runs exactly its configured rounds; with `adaptive`, a phase
stops early when the population's best has not gained `min_gain` for `tolerance` rounds (the global
phase only after each operator has run once).
"""
from __future__ import annotations

import itertools
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from igft.optimizers import prompts
from igft.optimizers.iterative import feedback_child
from igft.optimizers.runner import Candidate, CandidateTools, SearchContext
from igft.optimizers.trial import Trial

logger = logging.getLogger(__name__)

GLOBAL_OPERATORS = ("crossover_error", "crossover_semantic", "eda", "eda_index", "semantic_mutation")


@dataclass
class SEEConfig:
    population_size: int = field(default=5, metadata={"help": "instructions kept in the population"})
    r: int = field(default=25, metadata={"help": "validation conversations each instruction is scored on"})
    phases: tuple[str, ...] = field(default=("init", "feedback", "global", "semantic"),
                                    metadata={"help": "phases to run, in order (the paper's code: init, feedback)"})
    warm_start: tuple[str, ...] = field(default=(), metadata={"help": "initial instructions; Lamarckian induction fills the rest"})
    lamarckian_examples: int = field(default=10, metadata={"help": "train message -> intent pairs shown per Lamarckian induction"})
    lagged_feedback: bool = field(default=True, metadata={"help": "feedback then apply-feedback (2 calls) instead of one direct rewrite"})
    feedback_rounds: int = field(default=2, metadata={"help": "K1: feedback-mutation rounds (exactly this many unless --adaptive)"})
    global_rounds: int = field(default=5, metadata={"help": "global-evolution rounds, cycling through the global operators (the default 5 runs each once)"})
    global_operators: tuple[str, ...] = field(default=GLOBAL_OPERATORS, metadata={"help": "operators cycled over the global rounds, in order"})
    semantic_rounds: int = field(default=1, metadata={"help": "semantic-mutation rounds of the last phase"})
    adaptive: bool = field(default=False, metadata={"help": "stop a phase early after --tolerance rounds without --min-gain (the SEE paper's adaptive stopping)"})
    tolerance: int = field(default=2, metadata={"help": "with --adaptive: rounds without min_gain before a phase stops"})
    min_gain: float = field(default=0.0, metadata={"help": "with --adaptive: gain of the population's best that counts as progress"})
    pairing_weight: float = field(default=0.5, metadata={"help": "crossover pair score = w * normalised diversity + (1 - w) * normalised mean quality"})


# -- pairwise correctness without n x n matrices -------------------------------------------------------------

def _pairs(counts) -> int:
    return sum(c * (c - 1) // 2 for c in counts)


def pairwise_disagreement(labels_a: dict, labels_b: dict) -> tuple[int, int]:
    """(Hamming distance between two clusterings' pairwise-correctness vectors, number of pairs).

    A message pair is correct iff (same gold) == (same prediction); gold is the same for both parents,
    so their correctness differs exactly where one puts the pair together and the other does not:
    together_a + together_b - 2 * together_both, all three counted from label (co-)occurrence counts in
    O(n). Compared on the messages both parents labeled.
    """
    common = sorted(set(labels_a) & set(labels_b))
    a = [labels_a[k] for k in common]
    b = [labels_b[k] for k in common]
    together_a = _pairs(Counter(a).values())
    together_b = _pairs(Counter(b).values())
    together_both = _pairs(Counter(zip(a, b)).values())
    return together_a + together_b - 2 * together_both, len(common) * (len(common) - 1) // 2


def _min_max(values: Sequence[float]) -> list[float]:
    """Scale to [0, 1]; all-equal values become 1 (no preference among them)."""
    low, high = min(values), max(values)
    return [(v - low) / (high - low) if high > low else 1.0 for v in values]


def rank_pairs(population: Sequence[Trial], distance: np.ndarray, weight: float) -> list[tuple[int, int]]:
    """All index pairs ordered by weight * distance + (1 - weight) * mean quality, best first.

    Both terms are min-max normalised over the candidate pairs first, as the paper's code does: a raw
    Hamming fraction is about 0.01 on small data while quality spans [0, 1], so unnormalised the
    diversity term would never change the choice.
    """
    quality = [t.objective if math.isfinite(t.objective) else 0.0 for t in population]
    pairs = list(itertools.combinations(range(len(population)), 2))
    if not pairs:
        return []
    dist = _min_max([float(distance[i, j]) for i, j in pairs])
    mean_quality = _min_max([(quality[i] + quality[j]) / 2 for i, j in pairs])
    scored = [(weight * d + (1 - weight) * q, i, j) for d, q, (i, j) in zip(dist, mean_quality, pairs)]
    scored.sort(key=lambda s: (-s[0], s[1], s[2]))
    return [(i, j) for _, i, j in scored]


def error_distance(population: Sequence[Trial]) -> np.ndarray:
    """Normalised Hamming distances of the members' pairwise-correctness vectors (k x k, k = population)."""
    k = len(population)
    maps = [t.label_map for t in population]
    out = np.zeros((k, k))
    for i, j in itertools.combinations(range(k), 2):
        diff, total = pairwise_disagreement(maps[i], maps[j])
        out[i, j] = out[j, i] = diff / total if total else 0.0
    return out


def semantic_distance(population: Sequence[Trial], embedder) -> np.ndarray:
    """Cosine distances of the members' instruction embeddings."""
    vectors = np.asarray(embedder.embed([t.instruction for t in population]), dtype=float)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.where(norms == 0, 1, norms)
    return 1.0 - vectors @ vectors.T


# -- operators (generate functions) ------------------------------------------------------------------------

def lamarckian_child(examples: Sequence[tuple[str, str]], n_examples: int, fallback: str):
    def generate(tools: CandidateTools) -> str:
        pairs = tools.rng.sample(list(examples), min(n_examples, len(examples)))
        return prompts.extract_instruction(tools.ask(prompts.lamarckian_prompt(pairs)), fallback)
    return generate


def crossover_child(a: Trial, b: Trial):
    def generate(tools: CandidateTools) -> str:
        answer = tools.ask(prompts.crossover_prompt(a.instruction, a.objective, b.instruction, b.objective))
        return prompts.extract_instruction(answer, fallback=a.instruction if a.objective >= b.objective else b.instruction)
    return generate


def eda_child(population: Sequence[Trial], indexed: bool):
    def generate(tools: CandidateTools) -> str:
        if indexed:
            ordered = sorted(population, key=lambda t: (t.objective, -t.id))
            text = prompts.eda_index_prompt([t.instruction for t in ordered])
        else:
            shuffled = list(population)
            tools.rng.shuffle(shuffled)
            text = prompts.eda_prompt([t.instruction for t in shuffled])
        return prompts.extract_instruction(tools.ask(text), fallback=max(population, key=lambda t: t.objective).instruction)
    return generate


def semantic_mutation_child(parent: Trial):
    def generate(tools: CandidateTools) -> str:
        return prompts.extract_instruction(tools.ask(prompts.semantic_mutation_prompt(parent.instruction)), parent.instruction)
    return generate


# -- the search --------------------------------------------------------------------------------------------

def _best(population: Sequence[Trial]) -> float:
    return max((t.objective for t in population), default=float("-inf"))


def _elite(trials: Sequence[Trial], size: int) -> list[Trial]:
    """The `size` best trials with distinct instructions (ties: earliest)."""
    chosen, seen = [], set()
    for t in sorted(trials, key=lambda t: (-t.objective, t.id)):
        if t.instruction not in seen:
            seen.add(t.instruction)
            chosen.append(t)
    return chosen[:size]


class _Stopper:
    """Adaptive phase stopping: stop after `tolerance` rounds whose gain of the best is below `min_gain`."""

    def __init__(self, best: float, tolerance: int, min_gain: float):
        self.best, self.tolerance, self.min_gain, self.stale = best, tolerance, min_gain, 0

    def update(self, best: float) -> bool:
        """Record a round's best; True when the phase should stop."""
        gained = best - self.best if math.isfinite(self.best) else float("inf")
        if gained > self.min_gain:
            self.stale = 0
        else:
            self.stale += 1
        self.best = max(self.best, best)
        return self.stale >= self.tolerance


def see_search(ctx: SearchContext, config: SEEConfig | None = None, *, embedder=None, prefix: str = "see",
               meta: dict | None = None) -> list[Trial]:
    """Run SEE; trials are recorded in ctx.history (with `meta` added to each). Returns the final population (best first)."""
    config = config or SEEConfig()
    if meta:
        ctx = _with_meta(ctx, meta)
    population = _initialise(ctx, config, prefix)
    for phase in config.phases:
        if phase == "init" or not population or not ctx.check_trials_left():
            continue
        if phase == "feedback":
            population = _local_phase(ctx, config, population, prefix, "feedback", config.feedback_rounds)
        elif phase == "global":
            population = _global_phase(ctx, config, population, prefix, embedder)
        elif phase == "semantic":
            population = _local_phase(ctx, config, population, prefix, "semantic", config.semantic_rounds)
        else:
            raise ValueError(f"unknown SEE phase {phase!r}; use init, feedback, global, semantic")
    return sorted(population, key=lambda t: (-t.objective, t.id))


class _with_meta:
    """A view of a SearchContext that tags every candidate it evaluates with extra meta (e.g. Hyperband bracket/round)."""

    def __init__(self, ctx: SearchContext, meta: dict):
        self._ctx, self._meta = ctx, dict(meta)

    def __getattr__(self, name):
        return getattr(self._ctx, name)

    def evaluate(self, candidates):
        for cand in candidates:
            cand.meta = {**self._meta, **cand.meta}
        return self._ctx.evaluate(candidates)


def _initialise(ctx: SearchContext, config: SEEConfig, prefix: str) -> list[Trial]:
    from igft.optimizers.iterative import seed_instruction

    source = ctx.train_objective.dataset if ctx.train_objective is not None else ctx.objective.dataset
    examples = [(m.line, m.intent) for m in source.messages if m.intent]
    batch = []
    for k in range(config.population_size):
        if k < len(config.warm_start):
            batch.append(Candidate(slot=f"{prefix}/init/{k}", phase="warm_start", step=0, generate=config.warm_start[k],
                                   r=config.r, operator="warm_start"))
        else:
            batch.append(Candidate(slot=f"{prefix}/init/{k}", phase="lamarckian", step=0, r=config.r, operator="lamarckian",
                                   generate=lamarckian_child(examples, config.lamarckian_examples, seed_instruction())))
    return ctx.evaluate(batch)


def _local_phase(ctx, config, population, prefix, kind, rounds) -> list[Trial]:
    """Every member makes one child per round (feedback or semantic mutation); a better child replaces it."""
    stopper = _Stopper(_best(population), config.tolerance, config.min_gain)
    for round_ in range(rounds):
        if not ctx.check_trials_left():
            break
        batch = []
        for k, parent in enumerate(population):
            if kind == "feedback":
                generate, operator, fb = feedback_child(parent, config.lagged_feedback), "feedback", parent
            else:
                generate, operator, fb = semantic_mutation_child(parent), "semantic_mutation", None
            batch.append(Candidate(slot=f"{prefix}/{kind}_{round_}/{k}", phase=f"{kind}_{round_}", step=round_ + 1,
                                   generate=generate, r=config.r, parent_ids=[parent.id], operator=operator,
                                   feedback_parent=fb))
        children = ctx.evaluate(batch)
        by_parent = {c.parent_ids[0]: c for c in children}
        population = [by_parent[p.id] if p.id in by_parent and by_parent[p.id].objective > p.objective else p
                      for p in population]
        stop = stopper.update(_best(children))
        if len(children) < len(batch) or (config.adaptive and stop):
            break
    return population


def _global_phase(ctx, config, population, prefix, embedder) -> list[Trial]:
    stopper = _Stopper(_best(population), config.tolerance, config.min_gain)
    for round_ in range(config.global_rounds):
        if not ctx.check_trials_left():
            break
        operator = config.global_operators[round_ % len(config.global_operators)]
        if operator.startswith("crossover") and len(population) < 2:
            # identical children can shrink the distinct population to one: no pair to cross this round
            logger.info("global round %d: one distinct instruction left, %s skipped", round_, operator)
            continue
        if operator == "crossover_semantic" and embedder is None:
            logger.warning("semantic-wise crossover needs an embedder; using error-wise pairing")
            operator = "crossover_error"
        batch = _global_batch(ctx, config, population, prefix, round_, operator, embedder)
        children = ctx.evaluate(batch)
        population = _elite(list(population) + children, config.population_size)
        stop = stopper.update(_best(children))
        every_operator_ran = round_ + 1 >= len(config.global_operators)
        if len(children) < len(batch) or (config.adaptive and stop and every_operator_ran):
            break
    return population


def _global_batch(ctx, config, population, prefix, round_, operator, embedder) -> list[Candidate]:
    n_children = config.population_size
    common = dict(phase=f"global_{round_}", step=round_ + 1, r=config.r, operator=operator)
    if operator == "semantic_mutation":
        return [Candidate(slot=f"{prefix}/global_{round_}/{k}", generate=semantic_mutation_child(population[k % len(population)]),
                          parent_ids=[population[k % len(population)].id], **common) for k in range(n_children)]
    if operator in ("eda", "eda_index"):
        ids = [t.id for t in population]
        return [Candidate(slot=f"{prefix}/global_{round_}/{k}", generate=eda_child(population, operator == "eda_index"),
                          parent_ids=ids, **common) for k in range(n_children)]
    distance = error_distance(population) if operator == "crossover_error" else semantic_distance(population, embedder)
    pairs = rank_pairs(population, distance, config.pairing_weight)
    chosen = [pairs[k % len(pairs)] for k in range(n_children)]
    return [Candidate(slot=f"{prefix}/global_{round_}/{k}", generate=crossover_child(population[i], population[j]),
                      parent_ids=[population[i].id, population[j].id],
                      meta={"pair_distance": float(distance[i, j])}, **common)
            for k, (i, j) in enumerate(chosen)]
