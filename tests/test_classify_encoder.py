"""The encoder method: the bundled MiniLM fine-tuned end to end with a head, through the Trainer."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from igft.classify.base import ClassifierError, build_classifier, load_classifier, save_classifier
from igft.classify.encoder import balanced_weights
from igft.classify.task import FieldSpec, TaskSchema
from igft.resources import dummy_data_dir


def small_task(labels_kept: int = 4, per_label: int = 8):
    frame = pd.read_csv(dummy_data_dir() / "classify" / "hospitality_requests.csv")
    keep = sorted(frame["intent"].unique())[:labels_kept]
    frame = frame[frame["intent"].isin(keep)].groupby("intent").head(per_label)
    schema = TaskSchema(fields=[FieldSpec("intent", keep)])
    return schema, frame["text"].tolist(), [{"intent": x} for x in frame["intent"]]


def test_balanced_weights_follow_sklearn_formula():
    weights = balanced_weights(["a", "a", "a", "b"], ["a", "b", "c"])
    # N / (K * n_c): 4 / (3 * 3), 4 / (3 * 1); an absent label counts as one row
    assert weights == pytest.approx([4 / 9, 4 / 3, 4 / 3])


@pytest.mark.slow
def test_encoder_loss_falls_and_reload_gives_same_labels(tmp_path):
    schema, texts, targets = small_task()
    clf = build_classifier("encoder", schema, {"max_steps": 24, "batch_size": 8, "logging_steps": 4,
                                               "class_weight": "balanced", "output_dir": str(tmp_path / "scratch")})
    stats = clf.fit(texts, targets)
    losses = stats["losses"]
    assert stats["steps"] == 24 and len(losses) >= 4
    assert np.mean(losses[-2:]) < 0.5 * np.mean(losses[:2])  # it learns its training rows
    pred = clf.predict(texts)
    assert np.mean([p == t for p, t in zip(pred, targets)]) > 0.9
    probs = clf.predict_proba(texts[:3])["intent"]
    assert probs.shape == (3, 4) and np.allclose(probs.sum(axis=1), 1.0)
    save_classifier(clf, tmp_path / "model")
    again = load_classifier(tmp_path / "model")
    assert again.method == "encoder"
    assert again.predict(texts) == pred
    assert np.allclose(again.predict_proba(texts[:3])["intent"], probs, atol=1e-5)


@pytest.mark.slow
def test_encoder_multi_field_heads(tmp_path):
    schema, texts, targets = small_task(labels_kept=2, per_label=6)
    schema = TaskSchema(fields=[schema.fields[0], FieldSpec("parity", ["even", "odd"])])
    targets = [{**t, "parity": ("even", "odd")[i % 2]} for i, t in enumerate(targets)]
    clf = build_classifier("encoder", schema, {"max_steps": 3, "batch_size": 4})
    clf.fit(texts, targets)
    pred = clf.predict(texts[:4])
    assert all(p["intent"] in schema.fields[0].labels and p["parity"] in ("even", "odd") for p in pred)
    assert set(clf.predict_proba(texts[:2])) == {"intent", "parity"}


def test_encoder_bad_options_are_one_line(tmp_path):
    schema, texts, targets = small_task(labels_kept=2, per_label=2)
    with pytest.raises(ClassifierError, match="unknown option"):
        build_classifier("encoder", schema, {"epoch": 3})
    clf = build_classifier("encoder", schema, {"model": str(tmp_path / "nowhere"), "max_steps": 1})
    with pytest.raises(ClassifierError, match="cannot load encoder") as err:
        clf.fit(texts, targets)
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_encoder_through_the_cli(tmp_path, capsys):
    from igft.cli import main

    csv = dummy_data_dir() / "classify" / "dialogue_initiative.csv"
    assert main(["classify", "train", "--task", str(csv), "--method", "encoder", "--param", "max_steps=2",
                 "--param", "class_weight=balanced", "--out", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "encoder" / "config.json").is_file() and (tmp_path / "m" / "encoder_heads.pt").is_file()
    capsys.readouterr()
    assert main(["classify", "eval", "--model", str(tmp_path / "m"), "--task", str(csv), "--json",
                 "--latency-samples", "2"]) == 0
    assert '"accuracy"' in capsys.readouterr().out
