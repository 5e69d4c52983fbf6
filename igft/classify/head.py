"""Classification head on a decoder LLM (sequence-classification head + LoRA) with class-weighted loss.

A generative classifier trained on imbalanced labels tends to over-predict whichever class its prior
favours (the system-initiative paper saw this with the minority class); a head trained with a
class-weighted cross-entropy is the usual fix. Weights come from inverse frequencies ("balanced":
w_c = N / (K * n_c), scikit-learn's formula) or are given.

Multi-field tasks use one head whose logits are the fields' label sets side by side; the loss is the
sum over fields of each field's weighted cross-entropy on its slice.
"""
from __future__ import annotations

import json
import logging
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tqdm.auto import tqdm

from igft.classify.base import Classifier, ClassifierError
from igft.classify.task import TaskSchema

logger = logging.getLogger(__name__)


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
class HeadConfig:
    model: str = field(default="smollm2", metadata={"help": "base decoder LLM: smollm2, a local folder or an HF id"})
    quantize: str = field(default="none", metadata={"help": "none, or 4bit (QLoRA: NF4 base weights via bitsandbytes)"})
    lora_r: int = field(default=64, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout"})
    target_modules: str | None = field(default=None, metadata={"help": "comma list or all-linear; None = attention+MLP"})
    class_weights: str = field(default="balanced", metadata={"help": "balanced (inverse frequencies) or none"})
    weights: dict | None = field(default=None, metadata={"help": "given weights: {label: w} (one field) or {field: {label: w}}"})
    epochs: float = field(default=3.0, metadata={"help": "passes over the training rows (ignored when max_steps > 0)"})
    max_steps: int = field(default=0, metadata={"help": "optimizer steps; 0 = derive from epochs"})
    batch_size: int = field(default=8, metadata={"help": "training batch size"})
    learning_rate: float = field(default=2e-4, metadata={"help": "AdamW learning rate"})
    max_length: int = field(default=256, metadata={"help": "input tokens (truncated)"})
    eval_batch_size: int = field(default=32, metadata={"help": "texts per inference batch"})
    seed: int = field(default=0, metadata={"help": "seed for head init, dropout and batch order"})


class HeadClassifier(Classifier):
    method = "head"
    Config = HeadConfig

    def __init__(self, schema: TaskSchema, config: Any = None):
        super().__init__(schema, config)
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
        from igft.finetune.model_loading import bnb_config, load_tokenizer
        from igft.llm.local_models import resolve_model_path

        tokenizer = load_tokenizer(self.config.model)
        kwargs: dict[str, Any] = {"dtype": torch.float32, "num_labels": self.num_labels}
        if self.config.quantize == "4bit":
            kwargs["quantization_config"] = bnb_config("float32")
        elif self.config.quantize != "none":
            raise ClassifierError(f"quantize must be none or 4bit for the head classifier, got {self.config.quantize!r}")
        torch.manual_seed(self.config.seed)  # the score head starts random: seed it so runs repeat
        try:
            model = AutoModelForSequenceClassification.from_pretrained(resolve_model_path(self.config.model), **kwargs)
        except (OSError, ValueError) as err:
            raise ClassifierError(f"cannot load {self.config.model!r} with a classification head: "
                                  f"{str(err).splitlines()[0]}; pass smollm2 or a local decoder model folder") from err
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
        return self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.config.max_length,
                              return_tensors="pt")

    def loss(self, logits, targets):
        """Sum over fields of the weighted cross-entropy on each field's logit slice. targets: (batch, n_fields)."""
        import torch

        total = logits.new_zeros(())
        for j, spec in enumerate(self.schema.fields):
            lo, hi = self.offsets[j]
            weights = torch.tensor(self.field_weights[spec.name], dtype=logits.dtype)
            total = total + weighted_cross_entropy(logits[:, lo:hi], targets[:, j], weights)
        return total

    def fit(self, texts, targets, val_texts=(), val_targets=()) -> dict:
        import torch
        from peft import get_peft_model
        from igft.finetune.model_loading import make_lora_config

        cfg = self.config
        model, self.tokenizer = self._load_base()
        self.field_weights = {spec.name: self._weights_for(spec, [t[spec.name] for t in targets])
                              for spec in self.schema.fields}
        lora = make_lora_config(r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                                target_modules=cfg.target_modules, task_type="SEQ_CLS", modules_to_save=["score"])
        self.model = get_peft_model(model, lora)
        y = torch.tensor([[spec.labels.index(t[spec.name]) for spec in self.schema.fields] for t in targets])
        steps_per_epoch = math.ceil(len(texts) / cfg.batch_size)
        total = cfg.max_steps if cfg.max_steps > 0 else max(1, math.ceil(cfg.epochs * steps_per_epoch))
        optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=cfg.learning_rate)
        rng = random.Random(cfg.seed)
        order: list[int] = []
        losses = []
        self.model.train()
        for _ in tqdm(range(total), desc="classification head", leave=False):
            if len(order) < cfg.batch_size:
                fresh = list(range(len(texts)))
                rng.shuffle(fresh)
                order += fresh
            idx = order[: cfg.batch_size]
            del order[: cfg.batch_size]
            batch = self._encode([texts[i] for i in idx])
            logits = self.model(**batch).logits
            loss = self.loss(logits, y[idx])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
        self.model.eval()
        return {"steps": total, "first_loss": losses[0], "last_loss": losses[-1], "n_train": len(texts),
                "class_weights": self.field_weights}

    def logits(self, texts: Sequence[str]):
        import torch

        if self.model is None:
            raise ClassifierError("the head classifier is not trained; call fit or load a saved model")
        parts = []
        with torch.no_grad():
            for start in range(0, len(texts), self.config.eval_batch_size):
                parts.append(self.model(**self._encode(texts[start:start + self.config.eval_batch_size])).logits)
        return torch.cat(parts) if parts else torch.zeros((0, self.num_labels))

    def predict(self, texts):
        logits = self.logits(list(texts))
        out = [{} for _ in range(logits.shape[0])]
        for j, spec in enumerate(self.schema.fields):
            lo, hi = self.offsets[j]
            for row, k in enumerate(logits[:, lo:hi].argmax(-1).tolist()):
                out[row][spec.name] = spec.labels[k]
        return out

    def save_files(self, out_dir: Path) -> None:
        self.model.save_pretrained(out_dir / "adapter")
        self.tokenizer.save_pretrained(out_dir / "adapter")
        (out_dir / "class_weights.json").write_text(json.dumps(self.field_weights, indent=2), encoding="utf-8")

    @classmethod
    def load_files(cls, in_dir: Path, schema: TaskSchema, config: Any) -> "HeadClassifier":
        from peft import PeftModel

        clf = cls(schema, config)
        model, clf.tokenizer = clf._load_base()
        clf.model = PeftModel.from_pretrained(model, str(in_dir / "adapter"))
        clf.model.eval()
        weights_file = in_dir / "class_weights.json"
        if weights_file.is_file():
            clf.field_weights = json.loads(weights_file.read_text(encoding="utf-8"))
        return clf
