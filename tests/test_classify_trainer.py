"""The LLM classifiers on the Trainer machinery, with tiny random models (seconds, not minutes).

Head (transformers Trainer + class-weighted compute_loss) and generative (TRL SFTTrainer over
prompt/completion rows): the loss falls over a few steps on a repeated batch, the LoRA weights change,
the class weights change the loss exactly as computed by hand, early stopping stops, and a second run
resumes from the first run's checkpoint.
"""
from __future__ import annotations

import math

import pytest
import torch

from igft.classify.base import ClassifierError, build_classifier
from igft.classify.task import FieldSpec, TaskSchema
from tests.tiny_models import tiny_model

SCHEMA = TaskSchema(fields=[FieldSpec("label", ["no", "yes"])])
TEXTS = ["where is my order", "thanks a lot", "my parcel is late", "great service"]
TARGETS = [{"label": v} for v in ("no", "yes", "no", "no")]


def _options(**extra):
    return {"model": str(tiny_model("llama")), "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "warmup": 0.0,
            "eval_steps": 0, "batch_size": 4, **extra}


def _lora_b_norm(model) -> float:
    return float(sum(p.detach().float().norm() for n, p in model.named_parameters() if "lora_B" in n))


def test_head_trains_on_trainer_and_loss_falls():
    clf = build_classifier("head", SCHEMA, _options(max_steps=5, learning_rate=3e-2, max_length=16))
    stats = clf.fit(TEXTS, TARGETS)
    assert stats["steps"] == 5 and len(stats["losses"]) == 5
    assert stats["losses"][-1] < stats["losses"][0], stats["losses"]
    assert _lora_b_norm(clf.model) > 0  # LoRA B starts at zero
    assert stats["class_weights"]["label"] == pytest.approx([4 / (2 * 3), 4 / (2 * 1)])


def test_head_compute_loss_uses_the_class_weights():
    from igft.classify.head import _weighted_loss_trainer

    clf = build_classifier("head", SCHEMA, _options(max_steps=1, max_length=16, class_weights="none"))
    clf.fit(TEXTS, TARGETS)
    batch = clf._encode(TEXTS)
    labels = torch.tensor([[0], [1], [0], [0]])
    logits = clf.model(**batch).logits.detach()
    trainer = _weighted_loss_trainer(clf.loss).__new__(_weighted_loss_trainer(clf.loss))

    def by_hand(weights):
        num = den = 0.0
        for row, y in zip(logits.tolist(), [0, 1, 0, 0]):
            log_z = math.log(sum(math.exp(v) for v in row))
            num += weights[y] * -(row[y] - log_z)
            den += weights[y]
        return num / den

    for weights in ([1.0, 1.0], [0.5, 3.0]):
        clf.field_weights = {"label": weights}
        got = trainer.compute_loss(clf.model, {**batch, "labels": labels})
        assert float(got) == pytest.approx(by_hand(weights), rel=1e-5)
    assert by_hand([0.5, 3.0]) != pytest.approx(by_hand([1.0, 1.0]))


def test_head_early_stopping_stops():
    # learning rate 0: the validation loss never improves, so patience 1 stops at the second evaluation
    clf = build_classifier("head", SCHEMA, _options(max_steps=10, learning_rate=0.0, eval_steps=1,
                                                    early_stopping_patience=1, max_length=16, batch_size=2))
    stats = clf.fit(TEXTS, TARGETS, TEXTS[:2], TARGETS[:2])
    assert stats["stopped_early"] and stats["steps"] == 2 and len(stats["eval_losses"]) == 2


def test_head_resume_continues_from_the_checkpoint(tmp_path):
    ck = tmp_path / "ck"
    first = build_classifier("head", SCHEMA, _options(max_steps=2, save_steps=2, learning_rate=1e-2,
                                                      checkpoint_dir=str(ck), max_length=16, batch_size=2))
    first.fit(TEXTS, TARGETS)
    assert (ck / "checkpoint-2").is_dir()
    second = build_classifier("head", SCHEMA, _options(max_steps=4, save_steps=2, learning_rate=1e-2,
                                                       checkpoint_dir=str(ck), max_length=16, batch_size=2))
    stats = second.fit(TEXTS, TARGETS)
    assert stats["resumed_from"].endswith("checkpoint-2") and stats["steps"] == 4
    assert len(stats["losses"]) == 4  # steps 1-2 restored from the checkpoint's log, 3-4 trained now


def test_generative_trains_on_sft_trainer_with_completion_only_loss():
    schema = TaskSchema(fields=[FieldSpec("intent", ["late_checkout", "room_change"])])
    texts, targets = ["stay until 2pm?", "another room please"], [{"intent": "late_checkout"}, {"intent": "room_change"}]
    clf = build_classifier("generative", schema, _options(model=str(tiny_model("qwen2")), max_steps=5, learning_rate=3e-2,
                                                          max_text_tokens=16, eval_batch_size=2, batch_size=2))
    stats = clf.fit(texts, targets)
    assert stats["losses"][-1] < stats["losses"][0] and _lora_b_norm(clf.model) > 0
    rows = clf._rows(texts, targets)
    answer = clf._answer_ids(targets[0])
    mask = rows[0]["completion_mask"]
    assert sum(mask) == len(answer) and mask[-len(answer):] == [1] * len(answer)  # the answer and its stop token only
    assert answer[-1] == clf.tokenizer.convert_tokens_to_ids("<|im_end|>")
    preds = clf.predict(texts)
    assert all(p["intent"] in schema.fields[0].labels for p in preds)


@pytest.mark.parametrize("options, message", [
    ({"grad_accum": 0}, "--grad-accum must be a positive integer"),
    ({"batch_size": -1}, "--batch-size must be a positive integer"),
    ({"report_to": "neptune"}, "--report-to 'neptune' is not supported"),
    ({"lr_scheduler": "step"}, "lr_scheduler must be one of"),
])
def test_bad_classifier_options_fail_before_loading(options, message):
    with pytest.raises(ClassifierError, match=message):
        build_classifier("head", SCHEMA, options)
