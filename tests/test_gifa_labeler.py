"""GIFA labeler with a scripted LM: prompts, retrieval in prompts, retries, failures, resume, window, methods."""
import json
import random
import re
import threading
import time

import pytest

from igft.data import Conversation, Dataset, Message
from igft.errors import IgftError
from igft.gifa import GifaConfig, GifaConfigError, ProgressMismatch, label_dataset
from igft.llm.base import HashingEmbedder, ScriptedLM

SCRIPTS = [
    [("customer", "hello I never got my parcel", "report_missing_parcel"),
     ("assistant", "sorry to hear that, what is your order number", "ask_order_number"),
     ("customer", "it is 1234", "provide_order_number"),
     ("assistant", "thanks, a new parcel is on its way", "resend_parcel")],
    [("customer", "hi my invoice shows a double charge", "report_double_charge"),
     ("assistant", "sorry about that, what is your order number", "ask_order_number"),
     ("customer", "it is 5678", "provide_order_number"),
     ("assistant", "I refunded the second charge", "confirm_refund"),
     ("customer", "thanks a lot, bye", "thank_and_close")],
    [("customer", "hello where is my parcel", "report_missing_parcel"),
     ("assistant", "what is your order number please", "ask_order_number"),
     ("customer", "thanks a lot, bye", "thank_and_close")],
]


def make_dataset(n_conversations=6):
    convs = []
    for c in range(n_conversations):
        lines = SCRIPTS[c % len(SCRIPTS)]
        msgs = tuple(Message(c, i, role, f"{text} ({c})" if i == 0 else text, intent)
                     for i, (role, text, intent) in enumerate(lines))
        convs.append(Conversation(c, msgs))
    return Dataset(convs, "test")


CONV_LINE = re.compile(r"^(\d+)\. (customer|assistant): (.*)$", re.M)


def conversation_of(request):
    prompt = request.messages[-1]["content"]
    block = prompt.rsplit("Conversation (", 1)[1]
    return CONV_LINE.findall(block)


def oracle(dataset):
    """A fake LM that answers with the gold intent of each message it is shown."""
    gold = {m.text: m.intent for m in dataset.messages}

    def answer(request):
        prompt = request.messages[-1]["content"]
        if "Conversation (" not in prompt:  # a description request (method general)
            return "\n".join(f"{n}: what {n} means" for n in re.findall(r"^- (\w+)", prompt, re.M))
        return "\n".join(f"{i}. {gold[text]}" for i, _, text in conversation_of(request))
    return answer


def test_labels_catalog_and_stats_with_an_oracle_lm():
    ds = make_dataset()
    lm = ScriptedLM(oracle(ds))
    result = label_dataset(ds, lm, HashingEmbedder(), GifaConfig(), progress=False)
    assert result.labels == {m.key: m.intent for m in ds.messages}
    assert result.failures == []
    catalog = result.catalog.set_index("intent")
    assert catalog["count"].sum() == ds.n_messages
    assert catalog.loc["ask_order_number", "count"] == 6
    assert list(result.catalog["intent"])[:4] == ["report_missing_parcel", "ask_order_number", "provide_order_number", "resend_parcel"]
    stats = result.stats
    assert stats["calls"] == len(lm.requests) == 6 and stats["retries"] == 0 and stats["failures"] == 0
    assert stats["live_calls"] == 6 and stats["cached_calls"] == 0 and stats["prompt_tokens"] > 0
    # First prompt: nothing known yet; later prompts list intents retrieved from labeled messages.
    first, fourth = (r.messages[-1]["content"] for r in (lm.requests[0], lm.requests[3]))
    assert "none yet" in first
    assert "- ask_order_number" in fourth and "- report_missing_parcel" in fourth
    assert "answer with exactly 4 lines" in fourth
    assert lm.requests[0].temperature == 0.0 and lm.requests[0].max_tokens == 8 + 24 * 4


def test_known_intents_come_from_the_top_k_most_similar_labeled_messages():
    ds = make_dataset(3)
    lm = ScriptedLM(oracle(ds))
    label_dataset(ds, lm, HashingEmbedder(), GifaConfig(top_k=1), progress=False)
    third = lm.requests[2].messages[-1]["content"]
    section = third.split("Known intents", 1)[1].split("Conversation (", 1)[0]
    listed = re.findall(r"^- (\w+)", section, re.M)
    # top_k=1: one nearest labeled message per message of the 3-message conversation -> at most 3 intents,
    # and the obviously similar ones are among them.
    assert 1 <= len(listed) <= 3
    assert "ask_order_number" in listed and "thank_and_close" in listed
    assert "resend_parcel" not in listed and "confirm_refund" not in listed


def test_retry_raises_temperature_then_succeeds():
    ds = make_dataset(1)
    good = "\n".join(f"{i}. {m.intent}" for i, m in enumerate(ds.messages, 1))
    lm = ScriptedLM(["1. only_one_line", "I cannot do that.", good])
    cfg = GifaConfig(max_retries=3, retry_temperature_step=0.25)
    result = label_dataset(ds, lm, HashingEmbedder(), cfg, progress=False)
    assert [r.temperature for r in lm.requests] == [0.0, 0.25, 0.5]
    assert result.stats["retries"] == 2 and result.failures == []
    assert len(result.labels) == 4
    assert len({r.messages[-1]["content"] for r in lm.requests}) == 1  # same prompt, only the temperature moves


def test_a_conversation_failing_every_retry_is_recorded_not_dropped():
    ds = make_dataset(3)
    gold = oracle(ds)

    def flaky(request):
        lines = conversation_of(request)
        if "double charge" in lines[0][2]:
            return "1. customer: hi my invoice shows a double charge"  # a copy, never valid
        return gold(request)

    lm = ScriptedLM(flaky)
    result = label_dataset(ds, lm, HashingEmbedder(), GifaConfig(max_retries=2, retry_temperature_step=0.5), progress=False)
    assert len(lm.requests) == 1 + 3 + 1
    assert [f["conversation_number"] for f in result.failures] == [1]
    failure = result.failures[0]
    assert "3 attempt" in failure["reason"] and "count_mismatch" in failure["reason"]
    assert failure["last_reply"].startswith("1. customer")
    assert not any(key[0] == 1 for key in result.labels)
    assert len(result.labels) == ds.n_messages - 5
    assert result.stats["failures"] == 1 and result.stats["retries"] == 2
    assert [r.temperature for r in lm.requests[1:4]] == [0.0, 0.5, 1.0]


def test_max_retries_is_bounded_and_config_is_validated():
    for bad in (dict(max_retries=11), dict(max_retries=-1), dict(method="names"), dict(window=0), dict(instruction=" ")):
        with pytest.raises(GifaConfigError):
            GifaConfig(**bad).validate()
    assert GifaConfig(temperature=1.9, retry_temperature_step=0.5).attempt_temperature(2) == 2.0


class Interrupt(IgftError):
    pass


def test_resume_continues_without_relabeling(tmp_path):
    ds = make_dataset(6)
    full = label_dataset(ds, ScriptedLM(oracle(ds)), HashingEmbedder(), GifaConfig(), progress=False)

    answer = oracle(ds)
    calls = []

    def dies_on_fourth(request):
        calls.append(request)
        if len(calls) == 4:
            raise Interrupt("budget spent")
        return answer(request)

    with pytest.raises(Interrupt):
        label_dataset(ds, ScriptedLM(dies_on_fourth), HashingEmbedder(), GifaConfig(), out_dir=tmp_path, progress=False)
    lines = (tmp_path / "progress.jsonl").read_text().splitlines()
    assert len(lines) == 1 + 3  # header + the three finished conversations

    embedder = HashingEmbedder()
    lm = ScriptedLM(oracle(ds))
    resumed = label_dataset(ds, lm, embedder, GifaConfig(), out_dir=tmp_path, progress=False)
    assert len(lm.requests) == 3  # only conversations 3, 4, 5
    assert [conversation_of(r)[0][2] for r in lm.requests] == [ds.conversations[i].messages[0].text for i in (3, 4, 5)]
    assert embedder.calls == 0  # embeddings reused from the output folder
    assert resumed.labels == full.labels
    assert resumed.catalog.to_dict() == full.catalog.to_dict()
    # The prompts after resuming are the ones the uninterrupted run sent (same catalog state).
    lm_full = ScriptedLM(oracle(ds))
    label_dataset(ds, lm_full, HashingEmbedder(), GifaConfig(), progress=False)
    assert [r.messages for r in lm.requests] == [r.messages for r in lm_full.requests[3:]]
    assert resumed.stats["resumed_conversations"] == 3 and resumed.stats["calls"] == 6

    again = ScriptedLM([])
    assert label_dataset(ds, again, HashingEmbedder(), GifaConfig(), out_dir=tmp_path, progress=False).labels == full.labels
    assert again.requests == []


def test_resume_keeps_failures_and_extends_to_more_conversations(tmp_path):
    ds = make_dataset(6)
    lm = ScriptedLM(lambda r: "no idea")
    first = label_dataset(ds.head(2), lm, HashingEmbedder(), GifaConfig(max_retries=0), out_dir=tmp_path, progress=False)
    assert len(first.failures) == 2 and len(lm.requests) == 2
    lm2 = ScriptedLM(oracle(ds))
    more = label_dataset(ds, lm2, HashingEmbedder(), GifaConfig(max_retries=0), out_dir=tmp_path, progress=False)
    assert len(lm2.requests) == 4
    assert [f["conversation_number"] for f in more.failures] == [0, 1]


def test_resume_refuses_progress_of_other_settings(tmp_path):
    ds = make_dataset(2)
    label_dataset(ds, ScriptedLM(oracle(ds)), HashingEmbedder(), GifaConfig(), out_dir=tmp_path, progress=False)
    with pytest.raises(ProgressMismatch, match="top_k|config"):
        label_dataset(ds, ScriptedLM(oracle(ds)), HashingEmbedder(), GifaConfig(top_k=2), out_dir=tmp_path, progress=False)
    reordered = ds.subset([1, 0])
    with pytest.raises(ProgressMismatch, match="not the first conversations"):
        label_dataset(reordered, ScriptedLM(oracle(ds)), HashingEmbedder(), GifaConfig(), out_dir=tmp_path, progress=False)


def test_truncated_last_progress_line_is_redone(tmp_path):
    ds = make_dataset(3)
    label_dataset(ds, ScriptedLM(oracle(ds)), HashingEmbedder(), GifaConfig(), out_dir=tmp_path, progress=False)
    path = tmp_path / "progress.jsonl"
    text = path.read_text()
    path.write_text(text[: len(text) - 20])  # killed while writing the last line
    lm = ScriptedLM(oracle(ds))
    result = label_dataset(ds, lm, HashingEmbedder(), GifaConfig(), out_dir=tmp_path, progress=False)
    assert len(lm.requests) == 1 and len(result.labels) == ds.n_messages
    assert all(json.loads(line) for line in path.read_text().splitlines())


def jittered(answer, seed):
    """The oracle, answering after a random delay: thread completion order varies from run to run."""
    rng = random.Random(seed)
    lock = threading.Lock()

    def slow(request):
        with lock:
            delay = rng.random() * 0.02
        time.sleep(delay)
        return answer(request)
    return slow


def test_window_results_do_not_depend_on_thread_timing():
    ds = make_dataset(9)

    def reuse_first_known(request):
        # An answer that depends on the prompt's known intents, so snapshot semantics matter.
        prompt = request.messages[-1]["content"]
        known = re.findall(r"^- (\w+)", prompt, re.M)
        base = oracle(ds)(request).splitlines()
        return "\n".join(f"{line}_{known[0] if known else 'new'}"[:60] for line in base)

    runs = []
    for seed in (1, 2, 3):
        lm = ScriptedLM(jittered(reuse_first_known, seed))
        result = label_dataset(ds, lm, HashingEmbedder(), GifaConfig(window=4), progress=False)
        runs.append((result.labels, result.catalog.to_dict(), sorted(r.messages[-1]["content"] for r in lm.requests)))
    assert runs[0] == runs[1] == runs[2]

    # Snapshot semantics: the first window's four prompts all see an empty catalog.
    lm = ScriptedLM(jittered(reuse_first_known, 4))
    label_dataset(ds, lm, HashingEmbedder(), GifaConfig(window=4), progress=False)
    prompts = {conversation_of(r)[0][2]: r.messages[-1]["content"] for r in lm.requests}
    assert all("none yet" in prompts[ds.conversations[i].messages[0].text] for i in range(4))
    assert "none yet" not in prompts[ds.conversations[4].messages[0].text]


def test_window_one_and_four_agree_when_answers_ignore_the_catalog():
    ds = make_dataset(7)
    one = label_dataset(ds, ScriptedLM(oracle(ds)), HashingEmbedder(), GifaConfig(window=1), progress=False)
    four = label_dataset(ds, ScriptedLM(jittered(oracle(ds), 0)), HashingEmbedder(), GifaConfig(window=4), progress=False)
    assert one.labels == four.labels
    assert one.catalog.to_dict() == four.catalog.to_dict()


def test_window_error_keeps_earlier_conversations(tmp_path):
    ds = make_dataset(6)
    answer = oracle(ds)

    def fails_on_conversation_2(request):
        if conversation_of(request)[0][2].endswith("(2)"):
            raise Interrupt("server gone")
        return answer(request)

    with pytest.raises(Interrupt):
        label_dataset(ds, ScriptedLM(fails_on_conversation_2), HashingEmbedder(), GifaConfig(window=4),
                      out_dir=tmp_path, progress=False)
    done = [json.loads(l)["conversation_number"] for l in (tmp_path / "progress.jsonl").read_text().splitlines()[1:]]
    assert done == [0, 1]


def test_method_example_shows_example_messages():
    ds = make_dataset(3)
    lm = ScriptedLM(oracle(ds))
    label_dataset(ds, lm, HashingEmbedder(), GifaConfig(method="example", top_n=1), progress=False)
    third = lm.requests[2].messages[-1]["content"]
    assert '- ask_order_number (e.g. "sorry to hear that, what is your order number")' in third


def test_method_general_describes_new_intents_once():
    ds = make_dataset(4)
    lm = ScriptedLM(oracle(ds))
    result = label_dataset(ds, lm, HashingEmbedder(), GifaConfig(method="general"), progress=False)
    describe = [r.messages[-1]["content"] for r in lm.requests if "Conversation (" not in r.messages[-1]["content"]]
    # Conversations 0 and 1 bring new intents; 2 and 3 only reuse known ones (no description call).
    assert len(describe) == 2
    assert "- report_double_charge" in describe[1] and "- ask_order_number" not in describe[1]
    catalog = result.catalog.set_index("intent")
    assert catalog.loc["confirm_refund", "description"] == "what confirm_refund means"
    later = [r.messages[-1]["content"] for r in lm.requests if "Conversation (" in r.messages[-1]["content"]][-1]
    assert "- ask_order_number: what ask_order_number means" in later
    assert result.stats["calls"] == len(lm.requests) == 6


def test_description_answers_are_parsed_leniently():
    from igft.gifa.descriptions import parse_descriptions

    text = ("Here you go:\n1. report_double_charge: the customer says a payment was taken twice\n"
            "- `confirm_refund` - the assistant confirms money was returned\n"
            "unknown_intent: not asked for\nthank_and_close: thanks and ends the chat")
    got = parse_descriptions(text, ["report_double_charge", "confirm_refund", "ask_order_number", "thank_and_close"])
    assert got == {"report_double_charge": "the customer says a payment was taken twice",
                   "confirm_refund": "the assistant confirms money was returned",
                   "thank_and_close": "thanks and ends the chat"}


def test_method_general_survives_a_useless_description_answer():
    ds = make_dataset(2)
    answer = oracle(ds)
    lm = ScriptedLM(lambda r: "???" if "Conversation (" not in r.messages[-1]["content"] else answer(r))
    result = label_dataset(ds, lm, HashingEmbedder(), GifaConfig(method="general"), progress=False)
    assert len(result.labels) == ds.n_messages and set(result.catalog["description"]) == {""}


def test_one_embedder_embeds_a_dataset_once_across_runs():
    ds = make_dataset(3)
    embedder = HashingEmbedder()
    first = label_dataset(ds, ScriptedLM(oracle(ds)), embedder, GifaConfig(), progress=False)
    second = label_dataset(ds, ScriptedLM(oracle(ds)), embedder, GifaConfig(instruction="Other words."), progress=False)
    assert embedder.calls == 1
    assert first.stats["embed_calls"] == 1 and second.stats["embed_calls"] == 0
    label_dataset(ds.head(2), ScriptedLM(oracle(ds)), embedder, GifaConfig(), progress=False)
    assert embedder.calls == 2  # other texts, embedded again
