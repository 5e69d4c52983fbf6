"""Classification head on a decoder LLM (sequence-classification head + LoRA) with class-weighted loss.

A generative classifier trained on imbalanced labels tends to over-predict whichever class its prior
favours (the system-initiative paper saw this with the minority class); a head trained with a
class-weighted cross-entropy is the usual fix. Weights come from inverse frequencies ("balanced":
w_c = N / (K * n_c), scikit-learn's formula) or are given.

Multi-field tasks use one head whose logits are the fields' label sets side by side; the loss is the
sum over fields of each field's weighted cross-entropy on its slice.

Training runs on transformers' Trainer (`WeightedLossTrainer` overrides `compute_loss` with that loss),
so the options of igft.classify.llm_training apply: batch_size, grad_accum, schedule + warmup, mixed
precision, validation loss + early stopping, checkpoints + resume, report_to. `quantize="4bit"` loads
the base in NF4 through bitsandbytes (its CPU backend too) and keeps the score head in full precision.
`freeze_base=True` trains the score head alone on the frozen base (a linear probe of the last token's
state, no LoRA): each step is a forward pass only, the variant that fits many steps on a CPU.
`predict_proba` is the softmax of each field's logit slice (the out-of-scope threshold reads it).
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from igft.classify.base import Classifier, ClassifierError
from igft.classify.llm_training import (LLMTrainingOptions, checkpoint_folder, model_device, trainer_kwargs,
                                        training_stats, validate_options)
from igft.classify.task import TaskSchema

logger = logging.getLogger(__name__)
HEAD_FILE = "score_head.pt"  # freeze_base: the trained score head's state dict


def balanced_class_weights(labels: Sequence[str], label_set: Sequence[str]) -> list[float]:
    """w_c = N / (K * n_c) over the label set; a label absent from `labels` gets the weight of a single row."""
    counts = Counter(labels)
    n, k = len(labels), len(label_set)
    return [n / (k * max(counts.get(label, 0), 1)) for label in label_set]


def weighted_cross_entropy(logits, targets, weights=None):
    """sum_i w[y_i] * -log softmax(logits_i)[y_i] / sum_i w[y_i]  (plain mean CE when weights is None)."""
    import torch.nn.functional as F

    return F.cross_entropy(logits, targets, weight=weights)


@dataclass
class HeadConfig(LLMTrainingOptions):
    model: str = field(default="smollm2", metadata={"help": "base decoder LLM: smollm2, a local folder or an HF id"})
    quantize: str = field(default="none", metadata={"help": "none, or 4bit (QLoRA: NF4 base weights via bitsandbytes)"})
    class_weights: str = field(default="balanced", metadata={"help": "balanced (inverse frequencies) or none"})
    weights: dict | None = field(default=None, metadata={"help": "given weights: {label: w} (one field) or {field: {label: w}}"})
    epochs: float = field(default=3.0, metadata={"help": "passes over the training rows (ignored when max_steps > 0)"})
    max_length: int = field(default=256, metadata={"help": "input tokens (truncated)"})
    eval_batch_size: int = field(default=32, metadata={"help": "texts per inference batch"})
    freeze_base: bool = field(default=False, metadata={"help": "train only the score head on the frozen base LLM "
                              "(a linear probe of its last-token state; no LoRA): a step costs a forward pass only, "
                              "so many more steps fit a CPU budget; saves just the head's weights"})


def _weighted_loss_trainer(loss_fn):
    """A transformers Trainer whose loss is `loss_fn(logits, labels)` (the fields' class-weighted CE)."""
    from transformers import Trainer

    class WeightedLossTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: D102
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            loss = loss_fn(outputs.logits, labels)
            return (loss, outputs) if return_outputs else loss

    return WeightedLossTrainer


class _Rows:
    """A torch Dataset of tokenized texts with their label indices (one per field)."""

    def __init__(self, encodings: dict[str, list], labels: list[list[int]]):
        self.encodings, self.labels = encodings, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**{k: v[i] for k, v in self.encodings.items()}, "labels": self.labels[i]}


class HeadClassifier(Classifier):
    method = "head"
    Config = HeadConfig

    def __init__(self, schema: TaskSchema, config: Any = None):
        super().__init__(schema, config)
        validate_options(self.config)
        if self.config.class_weights not in ("balanced", "none"):
            raise ClassifierError(f"class_weights must be balanced or none, got {self.config.class_weights!r}")
        self.model = None
        self.tokenizer = None
        self.offsets: list[tuple[int, int]] = []
        start = 0
        for spec in schema.fields:
            self.offsets.append((start, start + len(spec.labels)))
            start += len(spec.labels)
        self.num_labels = start
        self.field_weights: dict[str, list[float]] = {}

    def _load_base(self):
        import torch
        from transformers import AutoModelForSequenceClassification
        from igft.finetune.model_loading import load_causal_lm

        if self.config.quantize not in ("none", "4bit", "auto"):
            raise ClassifierError(f"quantize must be none, auto or 4bit for the head classifier, got {self.config.quantize!r}")
        torch.manual_seed(self.config.seed)  # the score head starts random: seed it so runs repeat
        # Same placement and quantisation rules as Stage 2; the score head stays unquantized (trained whole).
        model, tokenizer = load_causal_lm(self.config.model, quantize=self.config.quantize, backend="hf",
                                          auto_class=AutoModelForSequenceClassification,
                                          model_kwargs={"num_labels": self.num_labels}, skip_quantization=["score"])
        # decoder LLMs have no pad token; the head reads the last non-pad position, so it must be set
        model.config.pad_token_id = tokenizer.pad_token_id
        return model, tokenizer

    def _weights_for(self, spec, labels: Sequence[str]) -> list[float]:
        given = self.config.weights
        if given:
            table = given.get(spec.name, given) if isinstance(given.get(spec.name), dict) else given
            missing = [label for label in spec.labels if label not in table]
            if missing:
                raise ClassifierError(f"class weights for field {spec.name!r} miss label(s) {', '.join(missing[:5])}; "
                                      f"give one weight per label")
            return [float(table[label]) for label in spec.labels]
        if self.config.class_weights == "none":
            return [1.0] * len(spec.labels)
        return balanced_class_weights(labels, spec.labels)

    def _encode(self, texts: Sequence[str]):
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.config.max_length,
                               return_tensors="pt")
        return batch.to(model_device(self.model)) if self.model is not None else batch

    def loss(self, logits, targets):
        """Sum over fields of the weighted cross-entropy on each field's logit slice. targets: (batch, n_fields)."""
        import torch

        total = logits.new_zeros(())
        for j, spec in enumerate(self.schema.fields):
            lo, hi = self.offsets[j]
            weights = torch.tensor(self.field_weights[spec.name], dtype=torch.float32, device=logits.device)
            total = total + weighted_cross_entropy(logits[:, lo:hi].float(), targets[:, j], weights)
        return total

    def _rows(self, texts: Sequence[str], targets: Sequence[dict[str, str]]) -> _Rows:
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.config.max_length)
        labels = [[spec.labels.index(t[spec.name]) for spec in self.schema.fields] for t in targets]
        return _Rows({k: list(v) for k, v in enc.items()}, labels)

    def fit(self, texts, targets, val_texts=(), val_targets=()) -> dict:
        from transformers import DataCollatorWithPadding, TrainingArguments
        from igft.finetune.model_loading import apply_lora, make_lora_config

        cfg = self.config
        model, self.tokenizer = self._load_base()
        self.field_weights = {spec.name: self._weights_for(spec, [t[spec.name] for t in targets])
                              for spec in self.schema.fields}
        if cfg.freeze_base:  # gradients stop at the score head: no backward pass through the base
            for name, param in model.named_parameters():
                param.requires_grad = name.startswith("score.")
            self.model = model
        else:
            lora = make_lora_config(r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                                    target_modules=cfg.target_modules, task_type="SEQ_CLS", modules_to_save=["score"])
            self.model = apply_lora(model, lora)
        train_rows = self._rows(texts, targets)
        known = [i for i, t in enumerate(val_targets)
                 if all(t[spec.name] in spec.labels for spec in self.schema.fields)]  # unseen labels: no loss
        val_rows = self._rows([val_texts[i] for i in known], [val_targets[i] for i in known]) if known else None
        with checkpoint_folder(cfg) as (folder, resume_from):
            args = TrainingArguments(**trainer_kwargs(cfg, folder, has_eval=val_rows is not None),
                                     remove_unused_columns=False, label_names=["labels"])
            from igft.finetune.trainer_args import early_stopping
            trainer = _weighted_loss_trainer(self.loss)(
                model=self.model, args=args, train_dataset=train_rows, eval_dataset=val_rows,
                data_collator=DataCollatorWithPadding(self.tokenizer),
                callbacks=early_stopping(args, cfg.early_stopping_patience))
            trainer.train(resume_from_checkpoint=resume_from)
            stats = training_stats(trainer, len(texts), resume_from)
        self.model = trainer.model
        self.model.eval()
        return {**stats, "class_weights": self.field_weights}

    def logits(self, texts: Sequence[str]):
        import torch

        if self.model is None:
            raise ClassifierError("the head classifier is not trained; call fit or load a saved model")
        from igft.finetune.model_loading import inference_autocast

        parts = []
        with torch.no_grad(), inference_autocast(self.model):
            for start in range(0, len(texts), self.config.eval_batch_size):
                parts.append(self.model(**self._encode(texts[start:start + self.config.eval_batch_size])).logits.float().cpu())
        return torch.cat(parts) if parts else torch.zeros((0, self.num_labels))

    def predict_proba(self, texts: Sequence[str]) -> dict:
        """Softmax over each field's logit slice, columns in the field's label order (the oos threshold reads it)."""
        logits = self.logits(list(texts))
        return {spec.name: logits[:, lo:hi].softmax(-1).numpy() for spec, (lo, hi) in zip(self.schema.fields, self.offsets)}

    def predict(self, texts):
        logits = self.logits(list(texts))
        out = [{} for _ in range(logits.shape[0])]
        for j, spec in enumerate(self.schema.fields):
            lo, hi = self.offsets[j]
            for row, k in enumerate(logits[:, lo:hi].argmax(-1).tolist()):
                out[row][spec.name] = spec.labels[k]
        return out

    def save_files(self, out_dir: Path) -> None:
        if self.config.freeze_base:  # the base is unchanged: the head's weights are the whole model
            import torch

            (out_dir / "adapter").mkdir(parents=True, exist_ok=True)
            torch.save(self.model.score.state_dict(), out_dir / "adapter" / HEAD_FILE)
        else:
            self.model.save_pretrained(out_dir / "adapter")
        self.tokenizer.save_pretrained(out_dir / "adapter")
        (out_dir / "class_weights.json").write_text(json.dumps(self.field_weights, indent=2), encoding="utf-8")

    @classmethod
    def load_files(cls, in_dir: Path, schema: TaskSchema, config: Any) -> "HeadClassifier":
        from peft import PeftModel

        clf = cls(schema, config)
        model, clf.tokenizer = clf._load_base()
        if config.freeze_base:
            import torch

            model.score.load_state_dict(torch.load(in_dir / "adapter" / HEAD_FILE, map_location="cpu"))
            clf.model = model
        else:
            clf.model = PeftModel.from_pretrained(model, str(in_dir / "adapter"))
        clf.model.eval()
        weights_file = in_dir / "class_weights.json"
        if weights_file.is_file():
            clf.field_weights = json.loads(weights_file.read_text(encoding="utf-8"))
        return clf
