"""Offline-labeler training samples: GIFA's own requests (byte for byte), its retrieval, targets,
windows and whole-service hold-out."""
import json
from pathlib import Path

import numpy as np
import pytest

from igft.data import Conversation, Dataset, Message, load_conversations
from igft.gifa import GifaConfig, label_dataset
from igft.gifa.parser import parse_intents
from igft.gifa.training_samples import (SampleConfig, TrainingSampleError, build_labeler_samples, embed_messages,
                                        format_target, load_sources, message_windows, source_samples,
                                        target_intent)
from igft.llm.base import HashingEmbedder, ScriptedLM
from igft.resources import toy_conversations_path

SGD_TRAIN = Path(__file__).resolve().parent.parent.parent / "shared" / "external" / "sgd" / "train"


def toy(n=None):
    dataset = load_conversations(toy_conversations_path())
    return dataset.head(n) if n else dataset


def canonical(messages):
    return json.dumps([dict(m) for m in messages], ensure_ascii=False, sort_keys=True)


@pytest.mark.parametrize("config", [
    GifaConfig(),
    GifaConfig(method="example", top_k=3, top_n=1),
    GifaConfig(top_k=8, worked_example=False, instruction="Label each message with its purpose."),
])
def test_sample_prompts_equal_what_gifa_sends(config):
    dataset = toy(12)
    embedder = HashingEmbedder()
    answers = [format_target([target_intent(m.intent) for m in c.messages]) for c in dataset.conversations]
    lm = ScriptedLM(answers)
    result = label_dataset(dataset, lm, embedder, config, progress=False)
    assert not result.failures and len(lm.requests) == len(dataset)

    samples = source_samples(dataset, embedder, config)
    assert len(samples) == len(dataset)
    for request, sample, answer in zip(lm.requests, samples, answers):
        assert canonical(sample["messages"][:-1]) == canonical(request.messages)
        assert sample["messages"][-1] == {"role": "assistant", "content": answer}
    # Retrieval really shows something once conversations are labeled (the comparison is not vacuous).
    shown = [s["messages"][-2]["content"] for s in samples[1:]]
    assert any(text.startswith("Known intents (reuse") for text in shown)
    # GIFA stored exactly the targets: the parser reads each target back as the gold labels.
    for sample, conversation in zip(samples, dataset.conversations):
        assert [result.labels[m.key] for m in conversation.messages] == sample["gold"]


def test_known_intents_are_those_of_the_nearest_gold_labeled_messages():
    dataset = toy(6)
    embedder = HashingEmbedder()
    config = GifaConfig(top_k=2)
    samples = source_samples(dataset, embedder, config)
    vectors = embed_messages(dataset, embedder)
    keys = [m.key for m in dataset.messages]
    gold = {m.key: target_intent(m.intent) for m in dataset.messages}
    done = []
    for conversation, sample in zip(dataset.conversations, samples):
        rows = [keys.index(m.key) for m in conversation.messages]
        expected = set()
        if done:
            labeled = [keys.index(k) for k in done]
            scores = vectors[rows] @ vectors[labeled].T
            for row_scores in scores:
                order = np.lexsort((np.arange(len(labeled)), -row_scores))[:2]
                expected.update(gold[done[j]] for j in order)
        shown = [line[2:] for line in sample["messages"][-2]["content"].splitlines() if line.startswith("- ")]
        assert set(shown) == expected
        done.extend(m.key for m in conversation.messages)


def test_targets_are_snake_case_names_the_parser_reads_back():
    assert target_intent("inform__request_alts") == "inform_request_alts"
    assert target_intent("inform_count__offer") == "inform_count_offer"
    assert target_intent("Report Problem") == "report_problem"
    long = "request_from_location__request_leaving_date__request_to_location"
    name = target_intent(long)
    assert name == "request_from_location_request_leaving_date_request_to" and len(name.split("_")) == 8
    intents = ["inform_request_alts", name, "goodbye"]
    assert parse_intents(format_target(intents), 3) == intents
    with pytest.raises(TrainingSampleError, match="snake_case"):
        target_intent("???")


def conversation(number, n):
    return Conversation(number, tuple(Message(number, i, "customer" if i % 2 == 0 else "assistant",
                                              f"message {i} of {number}", f"intent_{i % 3}") for i in range(n)))


def test_windows_cover_every_message_in_order():
    conv = conversation(0, 10)
    windows = message_windows(conv, 4)
    assert [[m.index for m in w.messages] for w in windows] == [[0, 1, 2, 3], [4, 5, 6, 7], [6, 7, 8, 9]]
    assert [len(w.messages) for w in message_windows(conv, 4, 2)] == [4, 4, 4, 4]
    assert message_windows(conv, 10) == [conv] and message_windows(conv, None) == [conv]


def test_window_samples_number_from_one_and_target_their_own_messages():
    dataset = Dataset([conversation(0, 10), conversation(1, 3)], "windows")
    samples = source_samples(dataset, HashingEmbedder(), GifaConfig(), SampleConfig(window_messages=4))
    assert [(s["conversation_number"], s["first_message"], s["n_messages"]) for s in samples] == \
        [(0, 0, 4), (0, 4, 4), (0, 6, 4), (1, 0, 3)]
    second = samples[1]
    prompt = second["messages"][-2]["content"]
    assert "1. customer: message 4 of 0" in prompt and "4. assistant: message 7 of 0" in prompt
    assert "Label all 4 messages" in prompt and "message 3 of 0" not in prompt
    assert second["gold"] == ["intent_1", "intent_2", "intent_0", "intent_1"]
    # Windows of one conversation share the state before it; the next conversation sees all of it.
    assert samples[0]["messages"][-2]["content"].startswith("Known intents: none yet")
    assert samples[2]["messages"][-2]["content"].startswith("Known intents: none yet")
    assert samples[3]["messages"][-2]["content"].startswith("Known intents (reuse")


def service(name, n_conversations):
    convs = [Conversation(c, tuple(Message(c, i, "customer" if i % 2 == 0 else "assistant", f"{name} text {c} {i}",
                                           f"{name}_act_{i}") for i in range(3))) for c in range(n_conversations)]
    return Dataset(convs, f"{name}.csv")


def test_whole_services_are_held_out():
    datasets = {"Buses_1": service("buses", 3), "Hotels_1": service("hotels", 2), "Media_1": service("media", 4)}
    built = build_labeler_samples(datasets, HashingEmbedder(), samples=SampleConfig(validation_sources=("Hotels_1",)))
    assert {s["source"] for s in built.train} == {"Buses_1", "Media_1"}
    assert {s["source"] for s in built.validation} == {"Hotels_1"}
    assert built.stats["n_train_samples"] == 7 and built.stats["n_validation_samples"] == 2
    # Each service is its own GIFA run: its first conversation knows no intents of another service.
    firsts = [s for s in built.train if s["conversation_number"] == 0]
    assert all(s["messages"][-2]["content"].startswith("Known intents: none yet") for s in firsts)

    drawn = build_labeler_samples(datasets, HashingEmbedder(), samples=SampleConfig(validation_fraction=0.34, seed=3))
    held = set(drawn.stats["validation_sources"])
    assert len(held) == 1 and not held & {s["source"] for s in drawn.train}
    again = build_labeler_samples(datasets, HashingEmbedder(), samples=SampleConfig(validation_fraction=0.34, seed=3))
    assert again.stats["validation_sources"] == drawn.stats["validation_sources"]


def test_bad_settings_fail_with_one_clear_line():
    datasets = {"a": service("a", 2), "b": service("b", 2)}
    with pytest.raises(TrainingSampleError, match="not among the inputs"):
        build_labeler_samples(datasets, HashingEmbedder(), samples=SampleConfig(validation_sources=("c",)))
    with pytest.raises(TrainingSampleError, match="leave at least one"):
        build_labeler_samples(datasets, HashingEmbedder(), samples=SampleConfig(validation_sources=("a", "b")))
    with pytest.raises(TrainingSampleError, match="window_messages"):
        SampleConfig(window_messages=0).validate()
    with pytest.raises(TrainingSampleError, match="general"):
        source_samples(service("a", 1), HashingEmbedder(), GifaConfig(method="general"))
    unlabeled = Dataset([Conversation(0, (Message(0, 0, "customer", "hi"),))], "unlabeled.csv")
    with pytest.raises(TrainingSampleError, match="gold intent"):
        source_samples(unlabeled, HashingEmbedder())
    with pytest.raises(TrainingSampleError, match="does not exist"):
        load_sources(["/nonexistent/folder"])


def test_sgd_service_samples_match_gifa_requests():
    if not SGD_TRAIN.is_dir():
        pytest.skip(f"{SGD_TRAIN} is absent (public SGD data, not shipped)")
    sources = load_sources([SGD_TRAIN / "Buses_1.csv"])
    dataset = sources["Buses_1"].head(5)
    embedder = HashingEmbedder()
    answers = [format_target([target_intent(m.intent) for m in c.messages]) for c in dataset.conversations]
    lm = ScriptedLM(answers)
    label_dataset(dataset, lm, embedder, GifaConfig(), progress=False)
    samples = source_samples(dataset, embedder, GifaConfig(), source="Buses_1")
    assert [canonical(s["messages"][:-1]) for s in samples] == [canonical(r.messages) for r in lm.requests]
    assert all("__" not in line for s in samples for line in s["messages"][-1]["content"].splitlines())
