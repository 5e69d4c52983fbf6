"""The two LLM classifiers trained for a few steps with the bundled SmolLM2 on the toy tasks.

Kept tiny (a handful of rows, one or two optimizer steps): these check the machinery -- training runs,
the adapter saves and loads, every generative prediction parses as JSON with allowed labels -- not
accuracy, which a 135M model after two steps does not have.
"""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from igft.classify.base import load_classifier
from igft.classify.run import train_classifier
from igft.classify.task import load_task
from igft.cli import main
from igft.resources import dummy_data_dir

pytestmark = pytest.mark.slow
TOY = dummy_data_dir() / "classify"


@pytest.fixture(autouse=True)
def _few_threads():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(min(2, before))
    yield
    torch.set_num_threads(before)


def test_generative_multi_field_outputs_always_parse(tmp_path):
    task = load_task(TOY / "german_tickets.csv")
    options = {"max_steps": 1, "batch_size": 2, "max_text_tokens": 48, "eval_batch_size": 4, "eval_steps": 0}
    clf, stats = train_classifier(task, "generative", options=options, out_dir=tmp_path / "m", max_train=4)
    assert stats["steps"] == 1 and math.isfinite(stats["last_loss"])
    assert clf.config.lora_r == 64 and clf.config.lora_alpha == 16 and clf.config.lora_dropout == 0.1
    texts = task.texts(task.split()["test"])[:4]
    preds = clf.predict(texts)
    assert len(preds) == len(clf.last_outputs) == 4
    for pred, raw in zip(preds, clf.last_outputs):
        assert json.loads(raw) == pred  # the decoded text itself is the JSON answer
        for spec in task.fields:
            assert pred[spec.name] in spec.labels
    again = load_classifier(tmp_path / "m")
    assert again.predict(texts) == preds


def test_generative_score_decoding_on_imbalanced_task(tmp_path):
    task = load_task(TOY / "dialogue_initiative.csv")
    options = {"max_steps": 1, "batch_size": 2, "decoding": "score", "eval_batch_size": 8, "eval_steps": 0}
    clf, _ = train_classifier(task, "generative", options=options, max_train=4)
    texts = task.texts(task.split()["test"])[:3]
    preds = clf.predict(texts)
    assert all(p["system_initiative"] in ("no", "yes") for p in preds)
    assert [json.loads(raw) for raw in clf.last_outputs] == preds
    # score decoding picks the label with the higher summed log-likelihood: check one by hand
    import torch

    prompt = clf._prompt_ids(texts[0])
    scores = {}
    for label, unit in clf._units[0].items():
        ids = torch.tensor([prompt + clf._prefix + unit])
        with torch.no_grad():
            logp = torch.log_softmax(clf.model(input_ids=ids).logits[0, :-1], -1)
        start = len(prompt) + len(clf._prefix)
        scores[label] = sum(float(logp[start - 1 + k, t]) for k, t in enumerate(unit))
    assert preds[0]["system_initiative"] == max(scores, key=scores.get)


def test_generative_cli_train_and_eval(tmp_path, capsys):
    csv = TOY / "hospitality_requests.csv"
    assert main(["classify", "train", "--task", str(csv), "--method", "generative", "--out", str(tmp_path / "m"),
                 "--max-steps", "1", "--batch-size", "2", "--max-train", "2", "--eval-steps", "0"]) == 0
    capsys.readouterr()
    assert main(["classify", "eval", "--model", str(tmp_path / "m"), "--task", str(csv), "--json", "--max-test", "3",
                 "--latency-samples", "1", "--out", str(tmp_path / "e")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 3 and 0.0 <= result["accuracy"] <= 1.0 and "intent" in result["per_field"]
    labels = set(load_task(csv).fields[0].labels)
    assert set(pd.read_csv(tmp_path / "e" / "predictions.csv")["pred_intent"]) <= labels


def test_head_classifier_with_class_weights(tmp_path):
    task = load_task(TOY / "dialogue_initiative.csv")
    options = {"max_steps": 2, "batch_size": 4, "max_length": 48, "eval_steps": 0}
    clf, stats = train_classifier(task, "head", options=options, out_dir=tmp_path / "m")
    train = task.split()["train"]
    n_yes = int((train["system_initiative"] == "yes").sum())
    weights = dict(zip(task.fields[0].labels, stats["class_weights"]["system_initiative"]))
    assert weights["yes"] == pytest.approx(len(train) / (2 * n_yes))
    assert weights["yes"] > 2 * weights["no"]  # the minority class weighs more
    assert math.isfinite(stats["last_loss"])
    assert clf.model.config.pad_token_id == clf.tokenizer.pad_token_id
    texts = task.texts(task.split()["test"])[:5]
    preds = clf.predict(texts)
    assert all(p["system_initiative"] in ("no", "yes") for p in preds)
    again = load_classifier(tmp_path / "m")
    assert again.predict(texts) == preds
    assert again.logits(texts).allclose(clf.logits(texts), atol=1e-5)  # the score head was saved with the adapter


def test_head_predict_proba_and_frozen_base(tmp_path):
    import numpy as np

    task = load_task(TOY / "hospitality_requests.csv")
    options = {"max_steps": 3, "batch_size": 4, "max_length": 48, "eval_steps": 0, "freeze_base": True,
               "learning_rate": 1e-2}
    clf, stats = train_classifier(task, "head", options=options, out_dir=tmp_path / "m")
    trainable = [n for n, p in clf.model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("score.") for n in trainable)  # a linear probe: the base stays frozen
    assert stats["steps"] == 3 and math.isfinite(stats["last_loss"])
    texts = task.texts(task.split()["test"])[:5]
    probs = clf.predict_proba(texts)["intent"]
    labels = task.fields[0].labels
    assert probs.shape == (5, len(labels)) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert [labels[i] for i in probs.argmax(1)] == [p["intent"] for p in clf.predict(texts)]
    saved = tmp_path / "m" / "adapter"
    assert (saved / "score_head.pt").is_file() and not list(saved.glob("*.safetensors"))  # the head only, not 135M weights
    again = load_classifier(tmp_path / "m")
    assert np.allclose(again.predict_proba(texts)["intent"], probs, atol=1e-5)


def test_generative_without_taxonomy_and_its_probabilities(tmp_path):
    import numpy as np

    task = load_task(TOY / "dialogue_initiative.csv")
    options = {"max_steps": 1, "batch_size": 2, "eval_batch_size": 8, "eval_steps": 0, "taxonomy_in_prompt": False}
    clf, _ = train_classifier(task, "generative", options=options, max_train=4)
    assert "Allowed labels" not in clf._system and "system_initiative" in clf._system  # the short prompt
    texts = task.texts(task.split()["test"])[:3]
    preds = clf.predict(texts)  # constrained decoding still only yields allowed labels
    assert all(p["system_initiative"] in ("no", "yes") for p in preds)
    probs = clf.predict_proba(texts)["system_initiative"]
    assert probs.shape == (3, 2) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    # the probabilities are the softmax of score decoding's label log-likelihoods: same argmax
    clf.config.decoding = "score"
    scored = clf.predict(texts)
    labels = task.fields[0].labels
    assert [labels[i] for i in probs.argmax(1)] == [p["system_initiative"] for p in scored]
