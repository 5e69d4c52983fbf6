"""Budgets, resume after a kill, and concurrency-independent histories (replayed through a real cassette)."""
from __future__ import annotations

import json
import re

import pytest

from igft.data import Conversation, Dataset, Message
from igft.labeling import LabelingResult
from igft.llm.base import CompletionRequest, HashingEmbedder, ScriptedLM
from igft.optimizers import (History, Objective, RandomSearchConfig, SEEConfig, SearchBudget, SearchContext,
                             random_search, see_search)
from igft.optimizers.testing import keyword_label_fn, simple_report


def toy_dataset(n_conv: int = 8, n_msg: int = 6) -> Dataset:
    convs = [Conversation(c, tuple(Message(c, i, "customer" if i % 2 == 0 else "assistant", f"message {c} {i}",
                                           f"intent_{(c + i) % 5}") for i in range(n_msg))) for c in range(n_conv)]
    return Dataset(convs, "toy")


def reply(request) -> str:
    prompt = request.messages[-1]["content"]
    if prompt.startswith("LABEL"):  # the fake labeler's call: answer depends only on the request
        return "precise" if request.seed % 2 else "plain"
    if "concrete feedback" in prompt:
        return f"feedback {request.seed % 11}"
    if "Here are messages" in prompt:
        return f"<instruction>induced {request.seed % 89}</instruction>"
    parents = re.findall(r"<instruction>(.*?)</instruction>", prompt, re.S)
    return f"<instruction>{(parents[0] if parents else 'x')} precise{request.seed % 3}</instruction>"


def lm_label_fn(instruction, dataset, lm) -> LabelingResult:
    """A labeler that, like GIFA, makes one LLM call per conversation (so scoring goes through the cassette)."""
    words = []
    for conv in dataset:
        words.append(lm.complete(CompletionRequest.from_prompt(f"LABEL {instruction} | {conv.number}", seed=len(instruction) + conv.number)).text)
    boosted = instruction + " precise" * words.count("precise")
    return keyword_label_fn(boosted, dataset)


def context(lm, history=None, budget=None, concurrency=1, label_fn=lm_label_fn) -> SearchContext:
    data = toy_dataset()
    return SearchContext(lm=lm, objective=Objective(data, label_fn, report_fn=simple_report),
                         history=history if history is not None else History(), budget=budget or SearchBudget(), concurrency=concurrency)


def test_budget_running_out_mid_search_ends_cleanly_with_a_valid_history(tmp_path):
    path = tmp_path / "history.jsonl"
    ctx = context(ScriptedLM(reply), History.open(path), SearchBudget(max_calls=23))
    random_search(ctx, RandomSearchConfig(iterations=20, r=3))
    assert ctx.stopped and "LLM-call budget" in ctx.stopped
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert 1 < len(lines) < 20 and len(lines) == len(ctx.history)
    assert all(line["objective"] == line["objective"] for line in lines)  # every recorded trial is scored
    assert sum(line["calls"] for line in lines) <= 23  # the interrupted trial is not recorded
    assert [line["id"] for line in lines] == list(range(len(lines)))


def test_trial_budget_limits_the_number_of_scored_trials():
    ctx = context(ScriptedLM(reply), budget=SearchBudget(max_trials=4))
    see_search(ctx, SEEConfig(population_size=3, r=2, phases=("init", "feedback"), feedback_rounds=3, tolerance=5))
    assert len(ctx.history) == 4 and ctx.stopped


class Killed(BaseException):
    """Stands for a SIGKILL/Ctrl-C: not an Exception, so nothing in the search swallows it."""


def test_killed_search_resumes_without_rescoring_finished_trials(tmp_path):
    path = tmp_path / "history.jsonl"
    config = RandomSearchConfig(iterations=7, r=3)
    reference = context(ScriptedLM(reply))
    random_search(reference, config)

    scored = []
    def dying_label_fn(instruction, dataset, lm):
        if len(scored) == 4:
            raise Killed()
        scored.append(instruction)
        return lm_label_fn(instruction, dataset, lm)
    with pytest.raises(Killed):
        random_search(context(ScriptedLM(reply), History.open(path), label_fn=dying_label_fn), config)
    assert len(path.read_text().splitlines()) == 4

    rescored = []
    def counting_label_fn(instruction, dataset, lm):
        rescored.append(instruction)
        return lm_label_fn(instruction, dataset, lm)
    lm = ScriptedLM(reply)
    resumed = context(lm, History.open(path), label_fn=counting_label_fn)
    random_search(resumed, config)
    assert len(rescored) == 3  # only the 3 unfinished trials are scored
    assert set(rescored).isdisjoint(scored)
    strip = lambda h: [(t.slot, t.instruction, t.parent_ids, t.objective, t.calls) for t in h.trials]
    assert strip(resumed.history) == strip(reference.history)
    assert strip(History.load(path)) == strip(reference.history)


@pytest.mark.parametrize("algo", ["random", "see"])
def test_histories_identical_at_concurrency_1_and_4_in_replay(tmp_path, algo):
    from igft.llm.factory import build_lm

    cassette = tmp_path / "lm.jsonl"
    def run(mode, concurrency):
        lm = build_lm("scripted", mode=mode, cassette=cassette, script=reply)
        ctx = context(lm, History.open(tmp_path / f"{mode}{concurrency}.jsonl"), concurrency=concurrency)
        if algo == "random":
            random_search(ctx, RandomSearchConfig(iterations=6, r=3, children_per_iteration=3))
        else:
            see_search(ctx, SEEConfig(population_size=4, r=3, phases=("init", "feedback", "global", "semantic"),
                                      feedback_rounds=1, global_rounds=2, tolerance=5), embedder=HashingEmbedder())
        return (tmp_path / f"{mode}{concurrency}.jsonl").read_text()
    recorded = run("record", 1)
    one, four = run("replay", 1), run("replay", 4)
    assert one == four == recorded
    assert len(one.splitlines()) > 8
