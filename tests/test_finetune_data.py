"""SFT data builder: role merging, both target formats, length accounting, split, exports."""
from __future__ import annotations

import pytest

from igft.data import Conversation, Dataset, Message
from igft.finetune.sft_data import (SYSTEM_PROMPTS, SFTDataError, build_sft_data, conversation_samples,
                                    count_tokens, format_target, merge_turns, read_jsonl, to_hf_dataset,
                                    to_prompt_completion, write_jsonl)


def conv(number: int, rows: list[tuple[str, str, str | None]]) -> Conversation:
    return Conversation(number, tuple(Message(number, i, role, text, intent) for i, (role, text, intent) in enumerate(rows)))


ROWS = [
    ("customer", "Hi, my parcel is late.", "report_late_delivery"),
    ("customer", "Order 123.", "provide_order_number"),
    ("assistant", "Sorry to hear that.", "apologize"),
    ("assistant", "It arrives tomorrow.", "provide_delivery_date"),
    ("assistant", "Anything else?", "apologize"),
    ("customer", "No, thanks!", "thank"),
    ("assistant", "Have a nice day.", "close_conversation"),
]


def test_merge_turns_joins_consecutive_roles_and_keeps_intents_in_order_without_repeats():
    turns = merge_turns(conv(7, ROWS))
    assert [t.role for t in turns] == ["customer", "assistant", "customer", "assistant"]
    assert turns[0].text == "Hi, my parcel is late.\nOrder 123."
    assert turns[1].text == "Sorry to hear that.\nIt arrives tomorrow.\nAnything else?"
    assert turns[1].intents == ("apologize", "provide_delivery_date")
    assert turns[1].indices == (2, 3, 4)
    assert turns[3].indices == (6,)


def test_format_targets():
    assert format_target("Hello.", ["greet", "offer_help"], "response") == "Hello."
    assert format_target("Hello.", ["greet", "offer_help"], "intent+response") == \
        "Intents:\n- greet\n- offer_help\nResponses:\nHello."
    with pytest.raises(SFTDataError, match="unknown SFT format"):
        format_target("x", [], "json")


def test_one_sample_per_assistant_turn_with_history_and_system_prompt():
    samples = conversation_samples(conv(7, ROWS), "intent+response", SYSTEM_PROMPTS["two-step"])
    assert len(samples) == 2
    first, second = samples
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]
    assert first["messages"][0]["content"] == SYSTEM_PROMPTS["two-step"]
    assert first["messages"][-1]["content"] == ("Intents:\n- apologize\n- provide_delivery_date\nResponses:\n"
                                               "Sorry to hear that.\nIt arrives tomorrow.\nAnything else?")
    # The history keeps earlier assistant turns as plain replies (no intent list).
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert second["messages"][2]["content"] == "Sorry to hear that.\nIt arrives tomorrow.\nAnything else?"
    assert second["messages"][-1]["content"] == "Intents:\n- close_conversation\nResponses:\nHave a nice day."
    assert second["reply"] == "Have a nice day." and second["intents"] == ["close_conversation"]
    plain = conversation_samples(conv(7, ROWS), "response", None)
    assert plain[1]["messages"][0]["role"] == "user"  # no system prompt given
    assert plain[1]["messages"][-1]["content"] == "Have a nice day."
    pc = to_prompt_completion(second)
    assert pc["completion"] == [second["messages"][-1]] and pc["prompt"] == second["messages"][:-1]


def test_intent_response_needs_intents_and_names_the_message():
    rows = [("customer", "hi", None), ("assistant", "hello", None)]
    with pytest.raises(SFTDataError, match=r"conversation 3, message\(s\) \[1\]"):
        conversation_samples(conv(3, rows), "intent+response", None)
    assert len(conversation_samples(conv(3, rows), "response", None)) == 1


def _dataset(n: int) -> Dataset:
    return Dataset([conv(i, ROWS) for i in range(n)])


def test_split_is_by_conversation_and_stats_count_samples():
    data = build_sft_data(_dataset(10), "response", val_fraction=0.3, seed=1)
    train_convs = {s["conversation_number"] for s in data.train}
    val_convs = {s["conversation_number"] for s in data.validation}
    assert not train_convs & val_convs and len(train_convs | val_convs) == 10
    assert data.stats["n_train_samples"] == 2 * len(train_convs) == len(data.train)
    assert data.stats["n_validation_conversations"] == len(val_convs) == 3


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from igft.finetune.chat_template import prepare_tokenizer
    from igft.finetune.model_loading import load_tokenizer
    tok = load_tokenizer("smollm2")
    prepare_tokenizer(tok)
    return tok


@pytest.mark.slow
def test_max_seq_len_accounting_counts_every_overlength_sample(smollm2_tokenizer):
    long_rows = [("customer", "word " * 80, "a"), ("assistant", "short reply", "b"),
                 ("customer", "ok", "c"), ("assistant", "fine", "d")]
    ds = Dataset([conv(0, long_rows), conv(1, ROWS)])
    lengths = {}
    for s in build_sft_data(ds, "response", tokenizer=smollm2_tokenizer, max_seq_len=10_000, val_fraction=0).train:
        lengths[(s["conversation_number"], s["turn"])] = s["n_tokens"]
        assert s["n_tokens"] == count_tokens(smollm2_tokenizer, s["messages"])
    limit = max(lengths[(1, 1)], lengths[(1, 3)]) + 1  # conversation 1 fits; both samples of conversation 0 do not
    assert lengths[(0, 1)] > limit and lengths[(0, 3)] > limit

    kept = build_sft_data(ds, "response", tokenizer=smollm2_tokenizer, max_seq_len=limit, overlength="keep", val_fraction=0)
    assert kept.stats["n_overlength"] == 2 and kept.stats["n_kept_overlength"] == 2 and len(kept.train) == 4

    dropped = build_sft_data(ds, "response", tokenizer=smollm2_tokenizer, max_seq_len=limit, overlength="drop", val_fraction=0)
    assert dropped.stats["n_overlength"] == 2 and dropped.stats["n_dropped"] == 2 and len(dropped.train) == 2

    trimmed = build_sft_data(ds, "response", tokenizer=smollm2_tokenizer, max_seq_len=limit,
                             overlength="trim_history", val_fraction=0)
    # Sample (0,1) has only the long customer turn as history: it cannot fit and is dropped (counted);
    # sample (0,3) fits once the long first turn is trimmed away.
    assert trimmed.stats["n_overlength"] == 2 and trimmed.stats["n_trimmed"] == 1 and trimmed.stats["n_dropped"] == 1
    cut = [s for s in trimmed.train if s["conversation_number"] == 0]
    assert len(cut) == 1 and cut[0]["n_tokens"] <= limit
    assert [m["content"] for m in cut[0]["messages"]] == [SYSTEM_PROMPTS["plain"], "short reply", "ok", "fine"]


def test_jsonl_and_hf_exports_round_trip(tmp_path):
    data = build_sft_data(_dataset(3), "intent+response", val_fraction=0)
    path = write_jsonl(data.train, tmp_path / "train.jsonl")
    assert read_jsonl(path) == data.train
    hf = to_hf_dataset(data.train)
    assert len(hf) == len(data.train) and hf[0]["messages"] == data.train[0]["messages"]
    pc = to_hf_dataset(data.train, prompt_completion=True)
    assert pc.column_names == ["prompt", "completion"]
    assert pc[1]["completion"][0]["content"].startswith("Intents:\n- close_conversation")
