"""Control flow of the four backbones with a scripted optimizer LM and a keyword-driven fake labeler."""
from __future__ import annotations

import itertools
import re
from collections import Counter

import numpy as np

from igft.data import Conversation, Dataset, Message
from igft.llm.base import HashingEmbedder, ScriptedLM
from igft.optimizers import (GreedySearchConfig, History, HyperbandConfig, Objective, RandomSearchConfig, SEEConfig,
                             SearchContext, greedy_search, hyperband_search, random_search, see_search)
from igft.optimizers.hyperband import hyperband_rounds
from igft.optimizers.see import error_distance, pairwise_disagreement, rank_pairs
from igft.optimizers.testing import keyword_label_fn, simple_report
from igft.optimizers.trial import Trial


def toy_dataset(n_conv: int = 10, n_msg: int = 6) -> Dataset:
    convs = [Conversation(c, tuple(Message(c, i, "customer" if i % 2 == 0 else "assistant", f"message {c} {i}",
                                           f"intent_{(c + i) % 5}") for i in range(n_msg))) for c in range(n_conv)]
    return Dataset(convs, "toy")


def between_tags(prompt: str) -> list[str]:
    return re.findall(r"<instruction>(.*?)</instruction>", prompt, re.S)


def optimizer_reply(request) -> str:
    """Feedback -> a fixed remark; any rewrite -> first tagged instruction + ' precise' (climbs the fake objective)."""
    prompt = request.messages[-1]["content"]
    if "Give concise, concrete feedback" in prompt:
        return "be more precise"
    if "Here are messages and the intents" in prompt:
        return f"<instruction>label intents seed {request.seed % 97}</instruction>"
    parents = between_tags(prompt)
    base = parents[0] if parents else "label intents"
    return f"<instruction>{base} precise</instruction>"


def make_ctx(lm, *, r=4, train=False, **kw) -> SearchContext:
    data = toy_dataset()
    objective = Objective(data.subset(data.numbers[2:]) if train else data, keyword_label_fn, report_fn=simple_report)
    train_objective = Objective(data.head(2), keyword_label_fn, report_fn=simple_report) if train else None
    return SearchContext(lm=lm, objective=objective, history=History(), train_objective=train_objective, **kw)


def test_random_search_parents_uniform_over_scored_and_two_calls_per_child():
    lm = ScriptedLM(optimizer_reply)
    ctx = make_ctx(lm, seed=3)
    random_search(ctx, RandomSearchConfig(iterations=8, r=4))
    trials = ctx.history.trials
    assert len(trials) == 8
    assert trials[0].phase == "seed" and trials[0].calls == 0
    for t in trials[1:]:
        assert len(t.parent_ids) == 1 and t.parent_ids[0] < t.id
        assert t.calls == 2  # lagged feedback: feedback + apply (labeling here makes no LLM call)
    assert len(lm.requests) == 14
    # Uniform choice over all scored prompts: not always the best one (greedy would be).
    parents = [t.parent_ids[0] for t in trials[1:]]
    greedy_parents = [max(trials[:t.id], key=lambda p: (p.objective, -p.id)).id for t in trials[1:]]
    assert parents != greedy_parents


def test_greedy_search_always_extends_the_best_and_direct_rewrite_uses_one_call():
    lm = ScriptedLM(optimizer_reply)
    ctx = make_ctx(lm)
    greedy_search(ctx, GreedySearchConfig(iterations=5, r=4, lagged_feedback=False))
    trials = ctx.history.trials
    for t in trials[1:]:
        best = max(trials[: t.id], key=lambda p: (p.objective, -p.id))
        assert t.parent_ids == [best.id]
        assert t.calls == 1 and t.operator == "direct_rewrite"
    assert all("Write an improved instruction" in r.messages[-1]["content"] for r in lm.requests)
    assert trials[-1].objective > trials[0].objective


def test_see_phases_trial_counts_and_local_replacement():
    lm = ScriptedLM(optimizer_reply)
    ctx = make_ctx(lm, train=True, train_r=2)
    config = SEEConfig(population_size=3, r=4, phases=("init", "feedback", "global", "semantic"), feedback_rounds=2,
                       global_rounds=4, semantic_rounds=1, tolerance=10)
    final = see_search(ctx, config, embedder=HashingEmbedder())
    counts = Counter(t.phase for t in ctx.history.trials)
    assert counts == {"lamarckian": 3, "feedback_0": 3, "feedback_1": 3, "global_0": 3, "global_1": 3,
                      "global_2": 3, "global_3": 3, "semantic_0": 3}
    ops = [t.operator for t in ctx.history.trials if t.phase.startswith("global")]
    assert ops == ["crossover_error"] * 3 + ["crossover_semantic"] * 3 + ["eda"] * 3 + ["eda_index"] * 3
    for t in ctx.history.trials:
        if t.operator == "crossover_error" or t.operator == "crossover_semantic":
            assert len(t.parent_ids) == 2
    # Feedback for SEE comes from the train subset: the feedback prompts show the train report (2 conversations).
    feedback_parents = [t for t in ctx.history.trials if t.phase.startswith("feedback")]
    for child in feedback_parents:
        parent = ctx.history.get(child.parent_ids[0])
        train_score = ctx.train_objective.cached(parent.instruction, 2)
        assert train_score is not None and train_score.report["n_messages"] == 12  # 2 train conversations x 6
    assert len(final) == 3 and final[0].objective == max(t.objective for t in ctx.history.trials if t.phase != "")


def test_see_adaptive_stopping_ends_a_phase_after_tolerance_rounds_without_gain():
    def stale(request):  # every rewrite returns the same instruction: no gain after the first round
        prompt = request.messages[-1]["content"]
        if "Here are messages" in prompt:
            return f"<instruction>label {request.seed % 97}</instruction>"
        return "<instruction>constant child</instruction>" if "concrete feedback" not in prompt else "fb"
    ctx = make_ctx(ScriptedLM(stale))
    see_search(ctx, SEEConfig(population_size=2, r=4, phases=("init", "feedback"), feedback_rounds=6, adaptive=True,
                              tolerance=2, min_gain=0.5, lagged_feedback=True))
    rounds = {t.phase for t in ctx.history.trials if t.phase.startswith("feedback")}
    assert rounds == {"feedback_0", "feedback_1"}  # stopped after 2 stale rounds, not 6


def test_pairwise_disagreement_matches_brute_force():
    rng = np.random.default_rng(0)
    keys = [(0, i) for i in range(60)]
    a = {k: f"a{rng.integers(5)}" for k in keys}
    b = {k: f"b{rng.integers(7)}" for k in keys}
    brute = sum((a[x] == a[y]) != (b[x] == b[y]) for x, y in itertools.combinations(keys, 2))
    assert pairwise_disagreement(a, b) == (brute, 60 * 59 // 2)


def test_error_wise_pairing_prefers_the_most_different_parents_at_full_diversity_weight():
    keys = [(0, i) for i in range(8)]
    def trial(i, labels, objective):
        return Trial(id=i, slot=str(i), phase="p", step=0, instruction=str(i), objective=objective,
                     labels=[[c, m, l] for (c, m), l in zip(keys, labels)])
    same = ["x", "x", "y", "y", "z", "z", "w", "w"]
    population = [trial(0, same, 0.9), trial(1, same, 0.8), trial(2, list("abcdefgh"), 0.1)]
    distance = error_distance(population)
    assert distance[0, 1] == 0 and distance[0, 2] > 0
    assert rank_pairs(population, distance, weight=1.0)[0] in [(0, 2), (1, 2)]
    assert rank_pairs(population, distance, weight=0.0)[0] == (0, 1)  # pure quality: the two best


def test_hyperband_runs_the_paper_schedule_and_warm_starts_from_the_previous_round():
    lm = ScriptedLM(optimizer_reply)
    ctx = make_ctx(lm)
    config = HyperbandConfig(hours=0.3, eta=2, r_min=1, r_max=4, n_min=1, warm_keep="eta",
                             see=SEEConfig(phases=("init", "feedback"), feedback_rounds=1))
    plan = hyperband_rounds(config)
    summaries = hyperband_search(ctx, config)
    assert [(s["bracket"], s["round"], s["population"], s["conversations"]) for s in summaries] == \
        [(b, r, pop, conv) for b, rounds in enumerate(plan) for r, (pop, conv) in enumerate(rounds)]
    trials = ctx.history.trials
    for b, rounds in enumerate(plan):
        for r in range(1, len(rounds)):
            prev = [t for t in trials if t.meta["bracket"] == b and t.meta["round"] == r - 1]
            warm = [t for t in trials if t.meta["bracket"] == b and t.meta["round"] == r and t.phase == "warm_start"]
            best_prev = sorted({t.instruction: t for t in sorted(prev, key=lambda t: -t.objective)[::-1]}.values(),
                               key=lambda t: (-t.objective, t.id))
            assert [t.instruction for t in warm] == [t.instruction for t in best_prev[: rounds[r][0]]]
            assert all(t.r == rounds[r][1] for t in warm)


def test_li_hyperband_keeps_the_best_one_over_eta():
    config = HyperbandConfig(variant="li", eta=3, r_min=1, r_max=9)
    assert hyperband_rounds(config) == [[(9, 1), (3, 3), (1, 9)], [(5, 3), (1, 9)], [(3, 9)]]


def test_semantic_wise_pairing_uses_embedding_distance_of_the_instructions():
    from igft.optimizers.see import semantic_distance

    texts = ["label every message with an intent", "label every message with one intent", "zebra quantum paprika"]
    population = [Trial(id=i, slot=str(i), phase="p", step=0, instruction=t, objective=o)
                  for i, (t, o) in enumerate(zip(texts, [0.9, 0.8, 0.1]))]
    distance = semantic_distance(population, HashingEmbedder())
    assert distance[0, 1] < distance[0, 2] and abs(distance[0, 2] - 1.0) < 1e-6
    assert rank_pairs(population, distance, weight=1.0)[0] in [(0, 2), (1, 2)]
    assert rank_pairs(population, distance, weight=0.0)[0] == (0, 1)
