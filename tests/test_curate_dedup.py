"""Deduplication: exact after normalisation, MinHash near-duplicates, first of each group kept, outputs say why."""
import pandas as pd
import pytest

from igft.cli import main
from igft.curate import CurateError
from igft.curate.dedup import DedupConfig, deduplicate, normalise_text
from igft.data import Conversation, Dataset, Message, load_conversations

LONG = "My parcel was due on Monday and it still has not arrived, can you check where it is please"


def conv(number, lines):
    return Conversation(number, tuple(Message(number, i, role, text, intent)
                                      for i, (role, text, intent) in enumerate(lines)))


def test_normalisation_ignores_case_punctuation_and_spacing():
    assert normalise_text("  Thanks!!  So   MUCH. ") == normalise_text("thanks so much") == "thanks so much"


def test_exact_duplicates_keep_the_first_of_each_group_and_respect_roles():
    data = Dataset([
        conv(0, [("customer", "Thanks!", "thank"), ("assistant", "Thanks!", "thank_back")]),
        conv(1, [("customer", "hello", "greet"), ("customer", "thanks", "thank")]),
        conv(2, [("customer", "THANKS", "thank"), ("assistant", "You're welcome", "welcome")]),
    ])
    result = deduplicate(data, DedupConfig(level="message", near=False))
    dropped = {(d.conversation_number, d.index): (d.kept_conversation_number, d.kept_index, d.reason) for d in result.dropped}
    # every later copy points at the first one, not at the previous copy; the assistant's "Thanks!" stays
    assert dropped == {(1, 1): (0, 0, "exact"), (2, 0): (0, 0, "exact")}
    assert [(m.key, m.text) for m in result.kept.messages] == [((0, 0), "Thanks!"), ((0, 1), "Thanks!"), ((1, 0), "hello"),
                                                             ((2, 0), "You're welcome")]  # renumbered: files allow no gaps


def test_near_duplicate_message_is_dropped_with_its_similarity():
    edited = LONG.replace("Monday", "Mondy")
    data = Dataset([conv(0, [("customer", LONG, "late")]), conv(1, [("customer", "unrelated question about invoices", "invoice"),
                                                                    ("customer", edited, "late")])])
    exact_only = deduplicate(data, DedupConfig(level="message", near=False))
    assert exact_only.dropped == []
    result = deduplicate(data, DedupConfig(level="message"))
    [d] = result.dropped
    assert (d.conversation_number, d.index, d.kept_conversation_number, d.kept_index, d.reason) == (1, 1, 0, 0, "near")
    assert 0.8 <= d.similarity < 1.0
    strict = deduplicate(data, DedupConfig(level="message", threshold=0.99))
    assert strict.dropped == []


def test_conversations_first_then_messages_and_empty_conversations_disappear():
    base = [("customer", LONG, "late"), ("assistant", "Sorry, what is the order number?", "ask_order")]
    data = Dataset([conv(5, base), conv(9, base), conv(7, [("customer", LONG + "!!", "late")]),
                    conv(8, [("customer", "where is it?", "late"), ("assistant", "Sorry, what is the order number?", "ask_order")])])
    result = deduplicate(data, DedupConfig(level="both"))
    by_level = [(d.level, d.conversation_number, d.index, d.kept_conversation_number, d.kept_index, d.reason) for d in result.dropped]
    assert by_level == [("conversation", 9, None, 5, None, "exact"),
                        ("message", 7, 0, 5, 0, "exact"), ("message", 8, 1, 5, 1, "exact")]
    assert result.kept.numbers == [5, 8]  # conversation 7 lost its only message
    assert result.report(data)["dropped"] == {"conversation_exact": 1, "message_exact": 2}


def test_gold_intent_conflicts_are_flagged():
    data = Dataset([conv(0, [("customer", "it is 1234", "provide_order_number")]),
                    conv(1, [("customer", "It is 1234.", "provide_phone_number")])])
    [d] = deduplicate(data, DedupConfig(level="message")).dropped
    assert d.intent_differs


def test_cli_writes_kept_data_dropped_rows_and_report(tmp_path, capsys):
    data = Dataset([conv(0, [("customer", LONG, "late")]), conv(1, [("customer", LONG.upper(), "late"),
                                                                    ("assistant", "Let me check", "check")])])
    path = data.save(tmp_path / "in.csv")
    assert main(["curate", "dedup", "--data", str(path), "--out", str(tmp_path / "out")]) == 0
    kept = load_conversations(tmp_path / "out" / "deduplicated.csv")
    assert [(m.key, m.text) for m in kept.messages] == [((0, 0), LONG), ((1, 0), "Let me check")]
    dropped = pd.read_csv(tmp_path / "out" / "dropped.csv")
    assert dropped.to_dict("records") == [{"level": "message", "conversation_number": 1, "index": 0,
                                           "kept_conversation_number": 0, "kept_index": 0, "reason": "exact",
                                           "similarity": 1.0, "intent_differs": False}]
    assert "kept 2/2 conversations, 2/3 messages" in capsys.readouterr().out
    assert main(["curate", "dedup", "--data", str(path), "--out", str(tmp_path / "bad"), "--threshold", "0"]) == 2
    assert "--threshold must be in (0, 1]" in capsys.readouterr().err
    with pytest.raises(CurateError):
        DedupConfig(level="words").validate()


def test_jsonl_in_jsonl_out(tmp_path):
    data = Dataset([conv(0, [("customer", LONG, "late")]), conv(1, [("customer", LONG, "late")])])
    path = data.save(tmp_path / "in.jsonl")
    assert main(["curate", "dedup", "--data", str(path), "--out", str(tmp_path / "out"), "--level", "conversation"]) == 0
    assert load_conversations(tmp_path / "out" / "deduplicated.jsonl").numbers == [0]
