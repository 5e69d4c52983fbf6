"""Held-out judging: train feeds the optimizer, validation decides, test is read once at the end."""
from __future__ import annotations

import json
import re

import pytest

from igft.cli import main
from igft.data import Conversation, Dataset, Message
from igft.llm.base import ScriptedLM
from igft.optimizers import (HyperbandConfig, RandomSearchConfig, SEEConfig, SearchSettings, run_search)
from igft.optimizers.iterative import IterativeConfig
from igft.optimizers.split import SplitError, split_conversations
from igft.optimizers.testing import keyword_label_fn


def toy_dataset(n_conv: int = 20, n_msg: int = 6) -> Dataset:
    convs = [Conversation(c, tuple(Message(c, i, "customer" if i % 2 == 0 else "assistant", f"message {c} {i}",
                                           f"intent_{(c + i) % 5}") for i in range(n_msg))) for c in range(n_conv)]
    return Dataset(convs, "toy")


def optimizer_reply(request) -> str:
    prompt = request.messages[-1]["content"]
    if "Give concise, concrete feedback" in prompt:
        return "be more precise"
    if "Here are messages and the intents" in prompt:
        return f"<instruction>label intents seed {request.seed % 97}</instruction>"
    parents = re.findall(r"<instruction>(.*?)</instruction>", prompt, re.S)
    return f"<instruction>{parents[0] if parents else 'label intents'} precise{request.seed % 5}</instruction>"


class Spy:
    """A label_fn that logs which conversations each scoring call labels (and so whose gold is read next)."""

    def __init__(self, inner=keyword_label_fn):
        self.inner, self.calls = inner, []

    def __call__(self, instruction, dataset, lm):
        self.calls.append(set(dataset.numbers))
        return self.inner(instruction, dataset, lm)


def test_split_is_seeded_disjoint_and_refuses_too_few_conversations():
    data = toy_dataset(20)
    a, b = split_conversations(data, seed=1), split_conversations(data, seed=2)
    assert a.sizes() == {"train": 4, "validation": 10, "test": 6}
    parts = [set(a.train.numbers), set(a.validation.numbers), set(a.test.numbers)]
    assert set().union(*parts) == set(data.numbers) and sum(map(len, parts)) == 20
    assert a.test.numbers != b.test.numbers
    with pytest.raises(SplitError, match="at least 6"):
        split_conversations(toy_dataset(5))
    with pytest.raises(SplitError, match="sum to 1"):
        split_conversations(data, (0.5, 0.5, 0.5))


def test_cli_with_five_conversations_stops_in_one_line(tmp_path, capsys):
    code = main(["optimize", "--algo", "random", "--llm", "scripted", "--embedder", "hashing", "--mode", "record",
                 "--cassette", str(tmp_path / "c"), "--max-conversations", "5", "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "at least 6" in err


@pytest.mark.parametrize("algo,config", [
    ("random", RandomSearchConfig(iterations=5, r=10)),
    ("greedy", IterativeConfig(iterations=5, r=10)),
    ("see", SEEConfig(population_size=3, r=10, feedback_rounds=1, global_rounds=5, semantic_rounds=1)),
    ("hyperband-see", HyperbandConfig(hours=0.3, eta=2, r_min=2, r_max=8, brackets=2,
                                      see=SEEConfig(phases=("init", "feedback"), feedback_rounds=1))),
])
def test_search_reads_test_conversations_only_in_its_final_scoring(algo, config):
    data = toy_dataset(20)
    spy = Spy()
    settings = SearchSettings(seed=3)
    result = run_search(algo, data, ScriptedLM(optimizer_reply), label_fn=spy, config=config, settings=settings)
    parts = split_conversations(data, settings.split, settings.seed)
    test = set(parts.test.numbers)
    result_calls = spy.calls
    touches = [k for k, numbers in enumerate(result_calls) if numbers & test]
    # the last scoring calls are the test ones; nothing before them labels (or reads the gold of) a test conversation
    assert touches and touches == list(range(len(result_calls) - len(touches), len(result_calls)))
    assert all(result_calls[k] == test for k in touches) and len(touches) <= 2  # best and seed (cached if equal)
    summary = result.summary()
    assert {"best_val", "best_test", "seed_val", "seed_test", "test_gain"} <= set(summary)
    assert summary["test_gain"] == pytest.approx(summary["best_test"] - summary["seed_test"])
    assert (summary["n_train"], summary["n_validation"], summary["n_test"]) == (4, 10, 6)
    # every trial names its operator; the search's own trials are validation scores
    assert all(t.operator for t in result.history)
    assert {t.split for t in result.history.search_trials()} == {"validation"}
    val = set(parts.validation.numbers)
    train = set(parts.train.numbers)
    assert all(numbers <= val or numbers <= train or numbers == test for numbers in result_calls)


def renamed_label_fn(instruction, dataset, lm):
    """keyword_label_fn with predictions renamed, so a gold name in a prompt can only come from gold."""
    result = keyword_label_fn(instruction, dataset, lm)
    result.labels = {k: f"pred_{v}" for k, v in result.labels.items()}
    return result


@pytest.mark.parametrize("feedback_gold", ["examples", "names", "none"])
def test_feedback_prompts_hold_only_train_messages(feedback_gold):
    data = toy_dataset(20)
    lm = ScriptedLM(optimizer_reply)
    settings = SearchSettings(seed=5, feedback_gold=feedback_gold)
    run_search("random", data, lm, label_fn=renamed_label_fn, config=RandomSearchConfig(iterations=4, r=10),
               settings=settings)
    train = set(split_conversations(data, settings.split, settings.seed).train.numbers)
    prompts = [r.messages[-1]["content"] for r in lm.requests if "concrete feedback" in r.messages[-1]["content"]]
    assert len(prompts) == 3
    for prompt in prompts:
        shown = {int(c) for c, _ in re.findall(r"message (\d+) (\d+)", prompt)}
        gold_names_shown = bool(re.search(r"(?<!pred_)intent_\d", prompt))
        assert gold_names_shown == (feedback_gold == "names")
        if feedback_gold == "none":
            assert not shown
            continue
        assert shown and shown <= train, (shown, train)


def test_hyperband_best_is_scored_at_the_largest_r_even_when_a_smaller_rung_scored_higher():
    data = toy_dataset(20)

    def lucky_on_small_rungs(instruction, dataset, lm):
        if len(dataset) < 8:  # a perfect labeling on few conversations: the lucky low-rung score
            return keyword_label_fn("precise " * 5, dataset)
        return keyword_label_fn(instruction, dataset)

    config = HyperbandConfig(hours=0.3, eta=2, r_min=2, r_max=8, see=SEEConfig(phases=("init", "feedback"), feedback_rounds=1))
    result = run_search("hyperband-see", data, ScriptedLM(optimizer_reply), label_fn=lucky_on_small_rungs, config=config)
    trials = result.history.search_trials()
    r_top = max(t.r for t in trials)
    assert r_top == 8
    assert max(t.objective for t in trials if t.r < r_top) > max(t.objective for t in trials if t.r == r_top)
    assert result.best.r == r_top
    assert result.summary()["best_val"] == max(t.objective for t in trials if t.r == r_top)


def test_li_variant_is_successive_halving_without_new_children():
    data = toy_dataset(20)
    config = HyperbandConfig(variant="li", eta=2, r_min=2, r_max=8)
    result = run_search("hyperband-see", data, ScriptedLM(optimizer_reply), label_fn=keyword_label_fn, config=config)
    trials = result.history.search_trials()
    for t in trials:
        if t.meta["round"] == 0:
            assert t.operator == "lamarckian"
            continue
        assert t.operator == "rescore" and len(t.parent_ids) == 1
        parent = result.history.get(t.parent_ids[0])
        assert parent.instruction == t.instruction and parent.meta["bracket"] == t.meta["bracket"]
        assert parent.meta["round"] == t.meta["round"] - 1 and t.r > parent.r
        siblings = [s for s in trials if s.meta["bracket"] == t.meta["bracket"] and s.meta["round"] == parent.meta["round"]]
        # survivors are the best of the previous rung
        assert parent.objective >= sorted((s.objective for s in siblings), reverse=True)[t.meta["population"] - 1]


def test_warm_start_keeps_the_best_half_by_default():
    data = toy_dataset(20)
    config = HyperbandConfig(hours=0.3, eta=2, r_min=2, r_max=8, brackets=1,
                             see=SEEConfig(phases=("init", "feedback"), feedback_rounds=1))
    result = run_search("hyperband-see", data, ScriptedLM(optimizer_reply), label_fn=keyword_label_fn, config=config)
    trials = result.history.search_trials()
    for r in (1, 2):
        population = next(t.meta["population"] for t in trials if t.meta["round"] == r)
        warm = [t for t in trials if t.meta["round"] == r and t.phase == "warm_start"]
        induced = [t for t in trials if t.meta["round"] == r and t.phase == "lamarckian"]
        assert len(warm) == max(population // 2, 1) and len(warm) + len(induced) == population


def test_result_json_holds_validation_and_test_figures(tmp_path):
    data = toy_dataset(12)
    result = run_search("greedy", data, ScriptedLM(optimizer_reply), label_fn=keyword_label_fn,
                        config=IterativeConfig(iterations=3, r=6))
    result.save(tmp_path)
    saved = json.loads((tmp_path / "result.json").read_text())
    for key in ("best_val", "best_test", "seed_val", "seed_test", "test_gain", "n_train", "n_validation", "n_test"):
        assert saved[key] is not None, key
    assert saved["best_objective"] == saved["best_val"] and saved["trials"] == 3


def test_lamarckian_examples_come_from_the_train_split_only():
    data = toy_dataset(20)
    lm = ScriptedLM(optimizer_reply)
    settings = SearchSettings(seed=7)
    run_search("see", data, lm, label_fn=keyword_label_fn, settings=settings,
               config=SEEConfig(population_size=3, r=10, phases=("init",)))
    train = set(split_conversations(data, settings.split, settings.seed).train.numbers)
    prompts = [r.messages[-1]["content"] for r in lm.requests if "Here are messages and the intents" in r.messages[-1]["content"]]
    assert len(prompts) == 3
    for prompt in prompts:
        shown = {int(c) for c, _ in re.findall(r"message (\d+) (\d+)", prompt)}
        assert shown and shown <= train
