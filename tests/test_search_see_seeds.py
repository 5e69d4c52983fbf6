"""SEE runs as configured, error-wise pairing is normalised, seeds propagate, a resume makes no extra call."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from igft.data import Conversation, Dataset, Message
from igft.labeling import LabelingResult
from igft.llm.base import CompletionRequest, HashingEmbedder, ScriptedLM
from igft.optimizers import RandomSearchConfig, SEEConfig, SearchSettings, run_search
from igft.optimizers.see import GLOBAL_OPERATORS, rank_pairs
from igft.optimizers.testing import keyword_label_fn
from igft.optimizers.trial import Trial


def toy_dataset(n_conv: int = 12, n_msg: int = 6) -> Dataset:
    convs = [Conversation(c, tuple(Message(c, i, "customer" if i % 2 == 0 else "assistant", f"message {c} {i}",
                                           f"intent_{(c + i) % 5}") for i in range(n_msg))) for c in range(n_conv)]
    return Dataset(convs, "toy")


def stale_reply(request) -> str:
    """Every operator returns the same child: no round ever gains, so only a stopper could end a phase early."""
    prompt = request.messages[-1]["content"]
    if "Here are messages" in prompt:
        return f"<instruction>induced {request.seed % 97}</instruction>"
    return "fb" if "concrete feedback" in prompt else "<instruction>constant child</instruction>"


def varied_reply(request) -> str:
    prompt = request.messages[-1]["content"]
    if prompt.startswith("LABEL"):
        return "precise" if request.seed % 2 else "plain"
    if "concrete feedback" in prompt:
        return f"feedback {request.seed % 11}"
    return f"<instruction>child {request.seed % 1000} precise</instruction>"


def test_default_see_runs_the_configured_rounds_and_every_global_operator():
    result = run_search("see", toy_dataset(), ScriptedLM(stale_reply), HashingEmbedder(), label_fn=keyword_label_fn,
                        config=SEEConfig(population_size=2, r=6))
    trials = result.history.search_trials()
    phases = Counter(t.phase for t in trials)
    default = SEEConfig()
    assert phases["lamarckian"] == 2
    assert [phases[f"feedback_{k}"] for k in range(default.feedback_rounds)] == [2] * default.feedback_rounds
    assert sum(1 for p in phases if p.startswith("global_")) == default.global_rounds == len(GLOBAL_OPERATORS)
    assert {t.operator for t in trials if t.phase.startswith("global_")} == set(GLOBAL_OPERATORS)
    assert phases["semantic_0"] == 2
    assert all(t.operator for t in result.history)


def test_adaptive_stopping_only_with_adaptive_and_after_every_global_operator():
    config = SEEConfig(population_size=2, r=6, feedback_rounds=5, global_rounds=8, adaptive=True, tolerance=1, min_gain=0.5)
    result = run_search("see", toy_dataset(), ScriptedLM(stale_reply), HashingEmbedder(), label_fn=keyword_label_fn, config=config)
    phases = {t.phase for t in result.history.search_trials()}
    assert {p for p in phases if p.startswith("feedback")} == {"feedback_0"}
    global_rounds = {p for p in phases if p.startswith("global_")}
    assert len(global_rounds) == len(GLOBAL_OPERATORS) < 8  # every operator once, then the stopper


def _trial(i, objective, labels):
    keys = [(0, k) for k in range(len(labels))]
    return Trial(id=i, slot=str(i), phase="p", step=0, instruction=str(i), objective=objective,
                 labels=[[c, m, l] for (c, m), l in zip(keys, labels)])


def test_error_wise_pairing_normalises_distance_so_the_weight_changes_the_pair():
    # Raw Hamming fractions are tiny (0.001 .. 0.01), qualities span 0.5 .. 0.9: unnormalised, the quality term
    # would decide at any weight below 1. Normalised, a diversity weight of 0.7 picks the most different pair.
    population = [_trial(0, 0.9, []), _trial(1, 0.85, []), _trial(2, 0.5, [])]
    distance = np.array([[0, 0.001, 0.002], [0.001, 0, 0.01], [0.002, 0.01, 0]])
    assert rank_pairs(population, distance, weight=0.0)[0] == (0, 1)
    assert rank_pairs(population, distance, weight=0.7)[0] == (1, 2)
    raw = {(i, j): 0.7 * distance[i, j] + 0.3 * (population[i].objective + population[j].objective) / 2
           for i, j in [(0, 1), (0, 2), (1, 2)]}
    assert max(raw, key=raw.get) == (0, 1)  # what the unnormalised mix would have chosen


def lm_label_fn(instruction, dataset, lm) -> LabelingResult:
    """Like GIFA, one LLM call per conversation, with the request seed of the search."""
    words = [lm.complete(CompletionRequest.from_prompt(f"LABEL {instruction} | {conv.number}", seed=conv.number)).text
             for conv in dataset]
    return keyword_label_fn(instruction + " precise" * words.count("precise"), dataset)


def _history(tmp_path, name, seed, algo="see"):
    config = (SEEConfig(population_size=2, r=6, feedback_rounds=1, global_rounds=2, semantic_rounds=0)
              if algo == "see" else RandomSearchConfig(iterations=4, r=6))
    run_search(algo, toy_dataset(), ScriptedLM(varied_reply), HashingEmbedder(), label_fn=keyword_label_fn,
               config=config, settings=SearchSettings(seed=seed), history_path=tmp_path / name)
    return (tmp_path / name).read_text()


def test_one_seed_gives_identical_histories_two_seeds_different_ones(tmp_path):
    assert _history(tmp_path, "a.jsonl", 1) == _history(tmp_path, "b.jsonl", 1)
    assert _history(tmp_path, "a.jsonl", 1) != _history(tmp_path, "c.jsonl", 2)
    assert _history(tmp_path, "r1.jsonl", 1, "random") != _history(tmp_path, "r2.jsonl", 2, "random")


def test_seed_reaches_gifa_request_seed_and_error_example_sampling():
    from igft.gifa import GifaConfig

    seeds = {}
    for seed in (4, 9):
        lm = ScriptedLM(lambda request: "1. greet\n2. ask\n3. answer\n4. ask\n5. answer\n6. bye")
        result = run_search("random", toy_dataset(), lm, HashingEmbedder(), config=RandomSearchConfig(iterations=1, r=4),
                            settings=SearchSettings(seed=seed), gifa_config=GifaConfig(max_retries=0))
        gifa = [r for r in lm.requests if "concrete feedback" not in r.messages[-1]["content"]]
        assert gifa and {r.seed for r in gifa} == {seed}
        seeds[seed] = [e.get("message_a") for e in result.history.trials[0].report["error_examples"]]
    assert seeds[4] != seeds[9]  # error examples are drawn with the search seed


class Killed(BaseException):
    """Stands for a SIGKILL: not an Exception, so nothing in the search swallows it."""


@pytest.mark.parametrize("algo", ["random", "see"])
def test_resumed_optimize_makes_no_call_an_uninterrupted_run_would_not_make(tmp_path, algo):
    config = (SEEConfig(population_size=3, r=6, feedback_rounds=2, global_rounds=2, semantic_rounds=1)
              if algo == "see" else RandomSearchConfig(iterations=6, r=6))

    def run(path, label_fn=lm_label_fn):
        lm = ScriptedLM(varied_reply)
        run_search(algo, toy_dataset(), lm, HashingEmbedder(), label_fn=label_fn, config=config, history_path=path)
        return lm

    reference = run(tmp_path / "ref.jsonl")
    scored = []

    def dying(instruction, dataset, lm):
        if len(scored) == 7:
            raise Killed()
        scored.append(instruction)
        return lm_label_fn(instruction, dataset, lm)

    with pytest.raises(Killed):
        run(tmp_path / "h.jsonl", dying)
    finished = [json.loads(line) for line in (tmp_path / "h.jsonl").read_text().splitlines()]
    assert finished
    resumed = run(tmp_path / "h.jsonl")
    key = lambda r: (r.messages[-1]["content"], r.seed)
    ref_calls = Counter(key(r) for r in reference.requests)
    new_calls = Counter(key(r) for r in resumed.requests)
    assert not new_calls - ref_calls  # nothing an uninterrupted run would not have asked
    assert sum(new_calls.values()) == sum(ref_calls.values()) - sum(t["calls"] for t in finished)
    assert (tmp_path / "h.jsonl").read_text().splitlines()[: len(finished)] == \
        (tmp_path / "ref.jsonl").read_text().splitlines()[: len(finished)]
