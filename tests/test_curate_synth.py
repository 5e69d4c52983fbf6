"""Synthetic paraphrases of rare intents: screened against the data, capped, marked, excludable, replayable."""
import json

import pandas as pd
import pytest

from igft.cli import main
from igft.curate import CurateError, exclude_synthetic, only_synthetic, select_synthetic
from igft.curate.synth import SynthConfig, parse_paraphrases, rare_intents, synthesize
from igft.data import Conversation, Dataset, Message, load_conversations
from igft.llm import ScriptedLM
from igft.llm.factory import build_lm


def data():
    lines = [("customer", "Hi, I was charged twice for my order", "report_double_charge"),
             ("assistant", "Sorry! What is your order number?", "ask_order_number"),
             ("customer", "It is 1234", "provide_order_number")]
    convs = [Conversation(c, tuple(Message(c, i, r, t if c == 0 or i else f"{t}, number {c}", g)
                                   for i, (r, t, g) in enumerate(lines))) for c in range(3)]
    convs.append(Conversation(3, (Message(3, 0, "customer", "Can I pay with a voucher?", "ask_voucher_payment"),)))
    return Dataset(convs, "tiny")


def paraphraser(request):
    text = request.messages[-1]["content"].rsplit("Message: ", 1)[1]
    if "voucher" in text:
        return "1. Is paying with a voucher possible?\n2. Can I pay with a voucher?\n- Do you take gift vouchers?\nDo you take gift vouchers?"
    return "Here are three paraphrases:\nIt is 1234!\nsorry, what is your ORDER number"  # both already in the data


def test_parse_strips_numbering_bullets_quotes_and_roles():
    assert parse_paraphrases('1. "One"\n2) two\n- three\n\n* customer: four\nParaphrase 3: five') == \
        ["One", "two", "three", "four", "five"]


def test_rare_intents_count_only_human_messages():
    ds = data()
    assert rare_intents(ds, 2) == [("ask_voucher_payment", 1)]
    assert [i for i, _ in rare_intents(ds, 4)] == ["ask_voucher_payment", "ask_order_number", "provide_order_number",
                                                   "report_double_charge"]


def test_synthetic_rows_are_screened_capped_marked_and_excluded_when_asked():
    ds = data()
    lm = ScriptedLM(paraphraser)
    result = synthesize(ds, lm, SynthConfig(min_count=4, max_per_intent=2, max_intents=2, max_calls_per_intent=2))
    outcome = {o.intent: o for o in result.outcomes}
    voucher = outcome["ask_voucher_payment"]
    # wanted min(4 - 1, cap 2); "Can I pay with a voucher?" is in the data and the second gift-voucher line a repeat
    assert (voucher.wanted, voucher.accepted, voucher.calls) == (2, 2, 1)
    order = outcome["ask_order_number"]
    assert order.accepted == 0 and order.calls == 2  # every candidate was an echo or already in the data
    assert order.rejected == {"prompt_echo": 2, "copy_of_source": 2, "exact_duplicate": 2}
    synthetic = [m for m in result.augmented.messages if m.synthetic]
    assert [(m.conversation_number, m.index, m.role, m.text, m.intent) for m in synthetic] == [
        (4, 0, "customer", "Is paying with a voucher possible?", "ask_voucher_payment"),
        (5, 0, "customer", "Do you take gift vouchers?", "ask_voucher_payment")]
    assert result.synthetic[0]["source_conversation_number"] == 3
    assert [m.key for m in exclude_synthetic(result.augmented).messages] == [m.key for m in ds.messages]
    assert only_synthetic(result.augmented).numbers == [4, 5]
    assert select_synthetic(result.augmented, "include") is result.augmented
    with pytest.raises(CurateError, match="--synthetic must be one of include, exclude, only"):
        select_synthetic(result.augmented, "drop")
    # requests carry a seed per call, so a recorded run replays exactly
    assert [r.seed for r in lm.requests] == [0, 1, 2]


def test_marker_survives_a_csv_round_trip(tmp_path):
    ds = data()
    result = synthesize(ds, ScriptedLM(paraphraser), SynthConfig(min_count=2))
    path = result.augmented.save(tmp_path / "augmented.csv")
    frame = pd.read_csv(path)
    assert frame["synthetic"].tolist() == [0] * ds.n_messages + [1]  # min_count 2: one wanted
    loaded = load_conversations(path)
    assert [m.synthetic for m in loaded.messages] == [False] * ds.n_messages + [True]
    assert exclude_synthetic(loaded).n_messages == ds.n_messages


def test_bad_input_lines(tmp_path, capsys):
    ds = data()
    path = ds.save(tmp_path / "d.csv")
    assert main(["curate", "synth", "--data", str(path), "--min-count", "0", "--llm", "scripted", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "igft curate: error: --min-count must be at least 1 (an intent is rare below it), got 0"
    unlabeled = Dataset([Conversation(0, (Message(0, 0, "customer", "hello"),))])
    with pytest.raises(CurateError, match="has no intents; label it first"):
        synthesize(unlabeled, ScriptedLM(["x"]), SynthConfig(min_count=2))


def test_budget_stops_cleanly_and_keeps_what_was_made(tmp_path, capsys):
    path = data().save(tmp_path / "d.csv")
    argv = ["curate", "synth", "--data", str(path), "--min-count", "4", "--llm", "scripted", "--max-calls", "1",
            "--out", str(tmp_path / "o"), "--no-progress"]
    assert main(argv) == 0
    assert "stopped early" in capsys.readouterr().out
    report = json.loads((tmp_path / "o" / "synth_report.json").read_text())
    assert report["stopped"] and sum(o["calls"] for o in report["intents"]) == 1


def test_record_then_replay_sends_the_same_requests(tmp_path):
    ds = data()
    cassette = tmp_path / "lm.jsonl"
    recorded = synthesize(ds, build_lm("scripted", mode="record", cassette=cassette, script=paraphraser), SynthConfig(min_count=3))
    replay_lm = build_lm("scripted", mode="replay", cassette=cassette)
    replayed = synthesize(ds, replay_lm, SynthConfig(min_count=3))
    assert replay_lm.meter.live_calls == 0 and replay_lm.meter.cached_calls > 0
    assert [m.text for m in replayed.augmented.messages] == [m.text for m in recorded.augmented.messages]


def test_bundled_smollm2_recording_replays(tmp_path, capsys):
    """simulated_runs/curate_synth: a real SmolLM2-135M run, replayed with no model and no network."""
    assert main(["curate", "synth", "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "[mode replay, llm local:smollm2" in out and "live 0]" in out
    report = json.loads((tmp_path / "o" / "synth_report.json").read_text())
    augmented = load_conversations(tmp_path / "o" / "augmented.csv")
    synthetic = [m for m in augmented.messages if m.synthetic]
    assert len(synthetic) == report["synthetic_messages"]
    run = json.loads((tmp_path / "o" / "synth_report.json").read_text())
    toy = load_conversations(__import__("igft.resources", fromlist=["x"]).toy_conversations_path())
    assert augmented.n_messages == toy.n_messages + len(synthetic)
    assert all(o["calls"] >= 1 for o in run["intents"])
