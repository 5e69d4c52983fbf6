"""Task loading, schemas, splits, prompt/answer parsing, and the classic baselines end to end."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from igft.classify.prompting import parse_answer, system_prompt
from igft.classify.task import FieldSpec, TaskError, TaskSchema, load_task, seeded_split
from igft.cli import main
from igft.resources import dummy_data_dir

TOY = dummy_data_dir() / "classify"


def write_csv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_text_intent_csv_needs_no_schema(tmp_path):
    csv = write_csv(tmp_path / "t.csv", [{"text": f"m{i}", "intent": "b" if i % 3 else "a"} for i in range(9)])
    task = load_task(csv)
    assert task.field_names == ["intent"]
    assert task.fields[0].labels == ["a", "b"]  # inferred, sorted
    assert task.texts()[:2] == ["m0", "m1"]
    assert task.targets()[0] == {"intent": "a"}


def test_split_column_is_honoured(tmp_path):
    rows = [{"text": f"m{i}", "intent": "ab"[i % 2], "split": ["train", "train", "test"][i % 3]} for i in range(9)]
    task = load_task(write_csv(tmp_path / "t.csv", rows))
    parts = task.split(seed=123)
    assert list(parts["test"]["text"]) == ["m2", "m5", "m8"]
    assert parts["validation"].empty


def test_seeded_split_is_stratified_and_repeatable():
    labels = [f"l{i % 7}" for i in range(70)]
    a, b, c = seeded_split(labels, seed=1), seeded_split(labels, seed=1), seeded_split(labels, seed=2)
    assert list(a) == list(b) and list(a) != list(c)
    frame = pd.DataFrame({"label": labels, "split": a})
    counts = frame.groupby(["label", "split"]).size().unstack(fill_value=0)
    assert (counts["train"] == 7).all() and (counts["test"] == 2).all() and (counts["validation"] == 1).all()


@pytest.mark.parametrize("rows, schema, message", [
    ([{"txt": "a", "intent": "x"}], None, "no 'text' + 'intent' columns"),
    ([{"text": "a", "intent": "x"}, {"text": "", "intent": "y"}], None, "row 3, column 'text' is empty"),
    ([{"text": "a", "intent": "x"}, {"text": "b", "intent": "z"}],
     {"fields": [{"name": "intent", "labels": ["x", "y"]}]}, "row 3, column 'intent' has label 'z'"),
    ([{"text": "a", "intent": "x", "split": "dev"}, {"text": "b", "intent": "y", "split": "train"}], None,
     "use train, validation or test"),
    ([{"text": "a", "intent": "x"}, {"text": "b", "intent": "x"}], None, "needs at least 2"),
    ([{"text": "a", "intent": "x"}], {"fields": ["category"]}, "missing column(s) category"),
])
def test_bad_input_is_one_clear_line(tmp_path, rows, schema, message):
    csv = write_csv(tmp_path / "t.csv", rows)
    with pytest.raises(TaskError) as err:
        load_task(csv, schema)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_reports_bad_task_as_one_line(tmp_path, capsys):
    csv = write_csv(tmp_path / "t.csv", [{"title": "a", "intent": "x"}])
    assert main(["classify", "train", "--task", str(csv), "--method", "tfidf", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no 'text' + 'intent' columns" in err


def test_toy_tasks_load_with_their_schemas():
    hotel = load_task(TOY / "hospitality_requests.csv")
    assert len(hotel.fields[0].labels) >= 20
    counts = hotel.frame["intent"].value_counts()
    assert counts.min() >= 10
    tickets = load_task(TOY / "german_tickets.csv")
    assert tickets.field_names == ["category", "subcategory", "urgency"]
    assert tickets.texts()[0].startswith("title: ") and "\ndescription: " in tickets.texts()[0]
    dialogue = load_task(TOY / "dialogue_initiative.csv")
    share = (dialogue.frame["system_initiative"] == "yes").mean()
    assert 0.1 < share < 0.35  # imbalanced on purpose


def test_system_prompt_lists_taxonomy_and_answer_shape():
    schema = load_task(TOY / "german_tickets.csv").schema
    prompt = system_prompt(schema)
    for spec in schema.fields:
        assert f"{spec.name}:" in prompt and all(f"- {label}" in prompt for label in spec.labels)
    assert '{"category": "abrechnung", "subcategory": ' in prompt


def test_parse_answer_maps_text_to_allowed_labels():
    schema = TaskSchema(fields=[FieldSpec("intent", ["late_checkout", "room_change"])])
    assert parse_answer('{"intent": "room_change"}', schema) == ({"intent": "room_change"}, True)
    assert parse_answer('Sure! {"intent": "Late Checkout"}', schema) == ({"intent": "late_checkout"}, False)
    assert parse_answer("The intent is room_change.", schema) == ({"intent": "room_change"}, False)
    assert parse_answer("no idea", schema) == ({"intent": None}, False)
    multi = TaskSchema(fields=[FieldSpec("a", ["x", "y"]), FieldSpec("b", ["p", "q"])])
    assert parse_answer('{"a": "y", "b": "nope"}', multi) == ({"a": "y", "b": None}, False)


def test_tfidf_cli_train_eval_roundtrip(tmp_path, capsys):
    csv = TOY / "hospitality_requests.csv"
    assert main(["classify", "train", "--task", str(csv), "--method", "tfidf", "--out", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "split.csv").is_file()  # no split column: the seeded split is saved with the model
    capsys.readouterr()
    assert main(["classify", "eval", "--model", str(tmp_path / "m"), "--task", str(csv), "--json",
                 "--out", str(tmp_path / "e"), "--latency-samples", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"accuracy", "macro_f1", "per_field"}
    assert result["per_field"]["intent"]["accuracy"] == result["accuracy"]
    # 23 intents, two test rows each: a majority-class guess scores 2/46; TF-IDF must do far better
    assert result["n"] == 46 and result["accuracy"] > 4 * 2 / 46
    assert (tmp_path / "e" / "confusion_intent.png").stat().st_size > 1000
    preds = pd.read_csv(tmp_path / "e" / "predictions.csv")
    assert len(preds) == 46 and set(preds["pred_intent"]) <= set(load_task(csv).fields[0].labels)


def test_eval_uses_the_saved_split_and_checks_it(tmp_path):
    csv = TOY / "dialogue_initiative.csv"
    main(["classify", "train", "--task", str(csv), "--method", "tfidf", "--out", str(tmp_path / "m"), "--seed", "4"])
    from igft.classify.run import evaluate_saved

    saved = pd.read_csv(tmp_path / "m" / "split.csv")
    result = evaluate_saved(tmp_path / "m", csv, latency_samples=0)
    assert result["n"] == int((saved["split"] == "test").sum())
    shorter = tmp_path / "short.csv"
    pd.read_csv(csv).head(40).to_csv(shorter, index=False)
    (tmp_path / "short.schema.json").write_text((TOY / "dialogue_initiative.schema.json").read_text())
    with pytest.raises(Exception, match="evaluate on the CSV the model was trained on"):
        evaluate_saved(tmp_path / "m", shorter, latency_samples=0)


def test_tfidf_multi_field_and_save_load(tmp_path):
    from igft.classify.base import load_classifier
    from igft.classify.run import train_classifier

    task = load_task(TOY / "german_tickets.csv")
    clf, stats = train_classifier(task, "tfidf", out_dir=tmp_path / "m")
    texts = task.texts()[:10]
    again = load_classifier(tmp_path / "m")
    assert again.predict(texts) == clf.predict(texts)
    for pred in clf.predict(texts):
        for spec in task.fields:
            assert pred[spec.name] in spec.labels
    # on its own training rows a TF-IDF model must recover most categories
    train = task.split()["train"]
    fitted = clf.predict(task.texts(train))
    agree = sum(p["category"] == t["category"] for p, t in zip(fitted, task.targets(train))) / len(train)
    assert agree > 0.8


def test_prompt_method_through_cli_with_a_spec(tmp_path, capsys):
    csv = TOY / "dialogue_initiative.csv"
    assert main(["classify", "train", "--task", str(csv), "--method", "prompt", "--lm", "scripted", "--shots", "2",
                 "--out", str(tmp_path / "m")]) == 0
    saved = json.loads((tmp_path / "m" / "prompt.json").read_text())
    assert len(saved["shots"]) == 2 and saved["fallback"] == {"system_initiative": "no"}
    capsys.readouterr()
    # the scripted LM answers "ok" to everything: nothing parses, every row falls back to the majority label
    assert main(["classify", "eval", "--model", str(tmp_path / "m"), "--task", str(csv), "--json",
                 "--latency-samples", "0"]) == 0
    result = json.loads(capsys.readouterr().out)
    test = pd.read_csv(csv)[lambda f: pd.read_csv(tmp_path / "m" / "split.csv")["split"].values == "test"]
    assert result["accuracy"] == pytest.approx((test["system_initiative"] == "no").mean())
