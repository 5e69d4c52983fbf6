"""`--synthetic include|exclude|only` on igft finetune, igft generate and igft classify train/eval filters the data."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from igft.cli import main
from igft.data import Conversation, Dataset, Message, load_conversations
from igft.resources import toy_conversations_path


def _with_synthetic(tmp_path):
    """The toy conversations plus three two-message synthetic conversations (6 messages marked synthetic)."""
    toy = load_conversations(toy_conversations_path())
    start = max(c.number for c in toy.conversations) + 1
    extra = [Conversation(start + k, (Message(start + k, 0, "customer", text, "ask_voucher_payment", synthetic=True),
                                      Message(start + k, 1, "assistant", "Yes, we accept vouchers.", "confirm_voucher",
                                              synthetic=True)))
             for k, text in enumerate(["Can I pay with a voucher?", "Is a gift voucher accepted?", "Do you take vouchers?"])]
    return toy, Dataset([*toy.conversations, *extra], "augmented").save(tmp_path / "augmented.csv")


@pytest.mark.parametrize("choice, expect", [("include", "all"), ("exclude", "human"), ("only", "synthetic")])
def test_finetune_trains_on_the_selected_messages(tmp_path, monkeypatch, choice, expect):
    import igft.finetune.train as train_module

    toy, path = _with_synthetic(tmp_path)
    seen = {}

    def fake_train(config, dataset=None):
        seen["dataset"] = dataset
        raise SystemExit(0)  # stop before any model is loaded

    monkeypatch.setattr(train_module, "train", fake_train)
    with pytest.raises(SystemExit):
        main(["finetune", "--data", str(path), "--synthetic", choice, "--out", str(tmp_path / "ft")])
    flags = [m.synthetic for m in seen["dataset"].messages]
    assert {"all": len(flags) == toy.n_messages + 6 and sum(flags) == 6,
            "human": len(flags) == toy.n_messages and not any(flags),
            "synthetic": len(flags) == 6 and all(flags)}[expect], (choice, len(flags), sum(flags))


def test_finetune_only_synthetic_without_any_is_one_clear_error(tmp_path, capsys):
    assert main(["finetune", "--synthetic", "only", "--out", str(tmp_path / "ft")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--synthetic only leaves no messages" in err


def test_generate_replies_only_to_the_selected_conversations(tmp_path, monkeypatch):
    import igft.finetune.generate as generate_module

    toy, path = _with_synthetic(tmp_path)
    seen = {}

    def fake_generate(samples, out, **kwargs):
        seen["samples"] = samples
        return []

    monkeypatch.setattr(generate_module, "generate_predictions", fake_generate)
    for choice in ("include", "exclude", "only"):
        assert main(["generate", "--data", str(path), "--synthetic", choice, "--out", str(tmp_path / f"{choice}.jsonl")]) == 0
        seen[choice] = {s["conversation_number"] for s in seen["samples"]}
    human = {c.number for c in toy.conversations}
    assert seen["exclude"] == seen["include"] & human and len(seen["include"] - human) == 3
    assert seen["only"] == seen["include"] - human


def _task(tmp_path):
    rows = [{"text": f"where is my order {i}", "intent": "track_order", "synthetic": "0"} for i in range(12)]
    rows += [{"text": f"I want a refund for item {i}", "intent": "refund", "synthetic": "0"} for i in range(12)]
    rows += [{"text": f"refund please, item {i}", "intent": "refund", "synthetic": "1"} for i in range(8)]
    path = tmp_path / "task.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("choice, n_rows", [("include", 32), ("exclude", 24)])
def test_classify_train_uses_the_selected_rows(tmp_path, capsys, choice, n_rows):
    path = _task(tmp_path)
    out = tmp_path / f"model_{choice}"
    assert main(["classify", "train", "--task", str(path), "--method", "tfidf", "--synthetic", choice,
                 "--out", str(out)]) == 0
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert stats["n_train_rows"] + stats["n_validation_rows"] + stats["n_test_rows"] == n_rows
    # eval with the same choice scores the same split; the predictions hold no synthetic row when excluded
    scored = tmp_path / f"eval_{choice}"
    assert main(["classify", "eval", "--model", str(out), "--task", str(path), "--synthetic", choice,
                 "--out", str(scored), "--latency-samples", "0"]) == 0
    predictions = pd.read_csv(scored / "predictions.csv", dtype=str)
    assert len(predictions) == stats["n_test_rows"]
    if choice == "exclude":
        assert set(predictions["synthetic"]) == {"0"}


def test_classify_only_synthetic_without_the_column_is_one_clear_error(tmp_path, capsys):
    path = tmp_path / "plain.csv"
    pd.DataFrame({"text": ["a", "b", "c", "d"], "intent": ["x", "y", "x", "y"]}).to_csv(path, index=False)
    assert main(["classify", "train", "--task", str(path), "--method", "tfidf", "--synthetic", "only",
                 "--out", str(tmp_path / "m")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no synthetic column" in err
