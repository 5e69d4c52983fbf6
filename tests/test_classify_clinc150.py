"""The CLINC150 loader (splits, out-of-scope handling, bad files) and the out-of-scope threshold."""
from __future__ import annotations

import json

import numpy as np
import pytest

from igft.classify.clinc150 import OOS_LABEL, default_clinc150_path, load_clinc150
from igft.classify.out_of_scope import threshold_scores, top_predictions, tune_threshold
from igft.classify.task import TaskError


def tiny_clinc(tmp_path, **overrides):
    data = {
        "train": [["book a flight", "book_flight"], ["fly me to rome", "book_flight"], ["what's the weather", "weather"],
                  ["is it raining", "weather"], ["play jazz", "play_music"], ["put on some music", "play_music"]],
        "val": [["get me a plane ticket", "book_flight"], ["forecast please", "weather"], ["music on", "play_music"]],
        "test": [["flight to paris", "book_flight"], ["will it snow", "weather"], ["play a song", "play_music"],
                 ["weather in oslo", "weather"]],
        "oos_train": [["how tall is everest", "oos"]],
        "oos_val": [["who won the cup", "oos"], ["tell me a riddle", "oos"]],
        "oos_test": [["what is love", "oos"], ["best pizza dough", "oos"], ["solve x squared", "oos"]],
    }
    data.update(overrides)
    path = tmp_path / "data_full.json"
    path.write_text(json.dumps(data))
    return path


def test_splits_and_oos_kept_apart(tmp_path):
    data = load_clinc150(tiny_clinc(tmp_path))
    task = data.task
    assert task.field_names == ["intent"] and task.fields[0].labels == ["book_flight", "play_music", "weather"]
    assert OOS_LABEL not in task.fields[0].labels  # threshold protocol: never a trained class
    assert task.frame["split"].value_counts().to_dict() == {"train": 6, "test": 4, "validation": 3}
    assert data.texts("validation") == ["get me a plane ticket", "forecast please", "music on"]
    assert data.labels("test")[1] == "weather"
    assert {k: len(v) for k, v in data.oos.items()} == {"train": 1, "validation": 2, "test": 3}
    assert task.split()["test"]["text"].tolist()[0] == "flight to paris"  # the split column is honoured


def test_oos_as_class_and_caps(tmp_path):
    data = load_clinc150(tiny_clinc(tmp_path), oos_as_class=True)
    assert OOS_LABEL in data.task.fields[0].labels and data.oos == {}
    oos_rows = data.task.frame[data.task.frame["intent"] == OOS_LABEL]
    assert oos_rows["split"].value_counts().to_dict() == {"test": 3, "validation": 2, "train": 1}
    small = load_clinc150(tiny_clinc(tmp_path), intents=2, per_intent={"train": 1}, oos_limit={"test": 1})
    assert small.task.fields[0].labels == ["book_flight", "play_music"]
    assert small.labels("train") == ["book_flight", "play_music"] and small.oos["test"] == ["what is love"]
    assert len(small.texts("test")) == 2  # uncapped splits keep every row of the kept intents


@pytest.mark.parametrize("override, message", [
    ({"val": [["no label"]]}, "val[0] is ['no label'], not a [text, intent] pair"),
    ({"test": [["  ", "weather"]]}, "test[0] has an empty text"),
    ({"train": [["x", "oos"], ["y", "weather"]]}, "out-of-scope queries belong in oos_train"),
])
def test_bad_files_are_one_line(tmp_path, override, message):
    with pytest.raises(TaskError) as err:
        load_clinc150(tiny_clinc(tmp_path, **override))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_split_and_missing_file(tmp_path):
    path = tiny_clinc(tmp_path)
    data = json.loads(path.read_text())
    del data["oos_val"]
    path.write_text(json.dumps(data))
    with pytest.raises(TaskError, match="no 'oos_val' list"):
        load_clinc150(path)
    with pytest.raises(TaskError, match="download data_full.json"):
        load_clinc150(tmp_path / "absent.json")


def test_threshold_tuning_separates_confident_from_unsure():
    in_top = np.array([0.9, 0.8, 0.95, 0.4])
    in_correct = np.array([True, True, True, False])
    oos_top = np.array([0.3, 0.5, 0.2])
    best = tune_threshold(in_top, in_correct, oos_top)
    # rejecting everything below 0.8 keeps the three correct in-scope answers and catches every oos query
    assert 0.5 < best["threshold"] <= 0.8
    assert best["oos_recall"] == 1.0 and best["in_scope_accuracy"] == 0.75
    none = threshold_scores(0.0, in_top, in_correct, oos_top)
    assert none["oos_recall"] == 0.0 and none["in_scope_accuracy"] == 0.75


def test_tfidf_on_tiny_clinc_gives_probabilities(tmp_path):
    from igft.classify.base import build_classifier

    data = load_clinc150(tiny_clinc(tmp_path))
    clf = build_classifier("tfidf", data.task.schema)
    clf.fit(data.texts("train"), [{"intent": x} for x in data.labels("train")])
    labels, top = top_predictions(clf, data.texts("test"), "intent")
    assert set(labels) <= set(data.task.fields[0].labels) and np.all((top > 0) & (top <= 1))
    probs = clf.predict_proba(data.texts("test"))["intent"]
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert labels == [p["intent"] for p in clf.predict(data.texts("test"))]


def test_real_clinc150_when_present():
    path = default_clinc150_path()
    if not path.is_file():
        pytest.skip(f"{path} is absent (public data, not shipped)")
    data = load_clinc150(path)
    assert len(data.task.fields[0].labels) == 150
    assert data.task.frame["split"].value_counts().to_dict() == {"train": 15000, "test": 4500, "validation": 3000}
    assert {k: len(v) for k, v in data.oos.items()} == {"train": 100, "validation": 100, "test": 1000}
    per_intent = data.task.frame.groupby(["split", "intent"]).size().unstack(0)
    assert (per_intent["train"] == 100).all() and (per_intent["test"] == 30).all()
