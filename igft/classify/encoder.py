"""A sentence encoder fine-tuned end to end with a classification head (`--method encoder`).

The bundled all-MiniLM-L6-v2 (22M parameters, 6 layers) by default, or any HF encoder folder / id the
user has: mean pooling over the token states (MiniLM's own sentence-transformers pooling, so training
starts from good sentence vectors), dropout, then one linear head per label field. All weights train
(no LoRA: the encoder is small). The loss is the sum over fields of each field's cross-entropy,
class-weighted when asked (`class_weight="balanced"`: w_c = N / (K * n_c), scikit-learn's formula).

Training runs on transformers' Trainer (`EncoderTrainer` only overrides the loss). Prediction also
exposes `predict_proba` (softmax per field), which the out-of-scope threshold uses.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from igft.classify.base import Classifier, ClassifierError
from igft.classify.task import TaskSchema

logger = logging.getLogger(__name__)

HEADS_FILE = "encoder_heads.pt"
ENCODER_DIR = "encoder"


@dataclass
class EncoderConfig:
    model: str = field(default="minilm", metadata={"help": "encoder: minilm (bundled all-MiniLM-L6-v2), a local folder or an HF id"})
    epochs: float = field(default=5.0, metadata={"help": "passes over the training rows (ignored when max_steps > 0)"})
    max_steps: int = field(default=-1, metadata={"help": "optimizer steps; -1 = use epochs"})
    batch_size: int = field(default=32, metadata={"help": "training texts per step"})
    learning_rate: float = field(default=1e-4, metadata={"help": "peak learning rate of encoder and heads (linear decay)"})
    head_learning_rate: float = field(default=2e-3, metadata={"help": "learning rate of the freshly initialised heads"})
    warmup_ratio: float = field(default=0.06, metadata={"help": "fraction of steps warming up"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    dropout: float = field(default=0.1, metadata={"help": "dropout before the heads"})
    max_length: int = field(default=64, metadata={"help": "input tokens (truncated)"})
    class_weight: str | None = field(default=None, metadata={"help": "None or 'balanced' (inverse class frequencies)"})
    eval_batch_size: int = field(default=128, metadata={"help": "texts per inference batch"})
    logging_steps: int = field(default=20, metadata={"help": "training loss logged every N steps"})
    seed: int = field(default=0, metadata={"help": "seed of head init, dropout and data order"})
    output_dir: str | None = field(default=None, metadata={"help": "Trainer scratch folder (default: a temporary one)"})


def balanced_weights(labels: Sequence[str], label_set: Sequence[str]) -> list[float]:
    """w_c = N / (K * n_c); a label absent from training gets the weight of a single row."""
    counts = Counter(labels)
    return [len(labels) / (len(label_set) * max(counts.get(label, 0), 1)) for label in label_set]


def _encoder_module(encoder_path: str, n_labels: list[int], dropout: float):
    """nn.Module: HF encoder -> masked mean pooling -> dropout -> one linear head per field."""
    import torch
    from torch import nn
    from transformers import AutoModel

    class EncoderWithHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = AutoModel.from_pretrained(encoder_path)
            hidden = self.encoder.config.hidden_size
            self.dropout = nn.Dropout(dropout)
            self.heads = nn.ModuleList([nn.Linear(hidden, n) for n in n_labels])

        def forward(self, input_ids, attention_mask, token_type_ids=None, labels=None):
            kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
            states = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = self.dropout(pooled)
            logits = torch.cat([head(pooled) for head in self.heads], dim=-1)
            return {"logits": logits}

    return EncoderWithHeads()


class _Rows:
    """Tokenized texts with one label index per field, as a torch Dataset."""

    def __init__(self, encodings: dict[str, list], labels: list[list[int]] | None):
        self.encodings, self.labels = encodings, labels

    def __len__(self) -> int:
        return len(self.encodings["input_ids"])

    def __getitem__(self, i: int) -> dict:
        item = {k: v[i] for k, v in self.encodings.items()}
        if self.labels is not None:
            item["labels"] = self.labels[i]
        return item


class EncoderClassifier(Classifier):
    """Fine-tuned sentence encoder + linear heads (one per field)."""

    method = "encoder"
    Config = EncoderConfig

    def __init__(self, schema: TaskSchema, config: Any = None):
        super().__init__(schema, config)
        self.model = None
        self.tokenizer = None

    @property
    def sizes(self) -> list[int]:
        return [len(spec.labels) for spec in self.schema.fields]

    def _encoder_path(self) -> str:
        from igft.llm.local_models import resolve_model_path

        return resolve_model_path(self.config.model)

    def _loss_fn(self, targets: Sequence[dict[str, str]]):
        import torch
        import torch.nn.functional as F

        weights = []
        for spec in self.schema.fields:
            if self.config.class_weight == "balanced":
                weights.append(torch.tensor(balanced_weights([t[spec.name] for t in targets], spec.labels)))
            elif self.config.class_weight in (None, "", "none"):
                weights.append(None)
            else:
                raise ClassifierError(f"class_weight must be none or balanced, got {self.config.class_weight!r}")
        sizes = self.sizes

        def loss_fn(logits, labels):
            total, start = 0.0, 0
            for j, (n, w) in enumerate(zip(sizes, weights)):
                total = total + F.cross_entropy(logits[:, start:start + n], labels[:, j],
                                                weight=None if w is None else w.to(logits.device))
                start += n
            return total

        return loss_fn

    def _label_rows(self, targets: Sequence[dict[str, str]]) -> list[list[int]]:
        index = [{label: i for i, label in enumerate(spec.labels)} for spec in self.schema.fields]
        try:
            return [[index[j][t[spec.name]] for j, spec in enumerate(self.schema.fields)] for t in targets]
        except KeyError as err:
            raise ClassifierError(f"training label {err.args[0]!r} is not in the task's label set") from err

    def fit(self, texts, targets, val_texts=(), val_targets=()) -> dict:
        import tempfile

        import torch
        from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

        if not texts:
            raise ClassifierError("no training rows; the encoder needs labelled examples")
        cfg = self.config
        set_seed(cfg.seed)
        path = self._encoder_path()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = _encoder_module(path, self.sizes, cfg.dropout)
        except (OSError, ValueError) as err:
            raise ClassifierError(f"cannot load encoder {cfg.model!r} ({err.__class__.__name__}); pass 'minilm', "
                                  "a local model folder, or an HF id available offline") from err
        train = _Rows(self.tokenizer(list(texts), truncation=True, max_length=cfg.max_length), self._label_rows(targets))
        evaluation = None
        if val_texts:
            evaluation = _Rows(self.tokenizer(list(val_texts), truncation=True, max_length=cfg.max_length),
                               self._label_rows(val_targets))
        loss_fn = self._loss_fn(targets)

        class EncoderTrainer(Trainer):
            def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: D102
                labels = inputs.pop("labels")
                outputs = model(**inputs)
                loss = loss_fn(outputs["logits"], labels)
                return (loss, outputs) if return_outputs else loss

            def create_optimizer(self, *a, **k):  # a fresh head learns faster than the pretrained encoder
                if self.optimizer is None:
                    head = [p for n, p in self.model.named_parameters() if n.startswith("heads.")]
                    body = [p for n, p in self.model.named_parameters() if not n.startswith("heads.")]
                    self.optimizer = torch.optim.AdamW([
                        {"params": body, "lr": cfg.learning_rate, "weight_decay": cfg.weight_decay},
                        {"params": head, "lr": cfg.head_learning_rate, "weight_decay": 0.0}])
                return self.optimizer

        scratch = cfg.output_dir or tempfile.mkdtemp(prefix="igft-encoder-")
        args = TrainingArguments(
            output_dir=scratch, num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
            per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.eval_batch_size,
            learning_rate=cfg.learning_rate, warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
            lr_scheduler_type="linear", logging_steps=cfg.logging_steps, save_strategy="no",
            eval_strategy="epoch" if evaluation is not None and cfg.max_steps < 0 else "no",
            seed=cfg.seed, data_seed=cfg.seed, use_cpu=not torch.cuda.is_available(), report_to=[],
            remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=True)
        trainer = EncoderTrainer(model=self.model, args=args, train_dataset=train, eval_dataset=evaluation,
                                 data_collator=DataCollatorWithPadding(self.tokenizer))
        output = trainer.train()
        self.model.eval()
        losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
        evals = [r["eval_loss"] for r in trainer.state.log_history if "eval_loss" in r]
        return {"steps": trainer.state.global_step, "train_loss": float(output.training_loss),
                "losses": losses, "eval_losses": evals}

    def _logits(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        if self.model is None:
            raise ClassifierError("the encoder classifier is not trained; call fit or load a saved model")
        device = next(self.model.parameters()).device
        out = []
        for i in range(0, len(texts), self.config.eval_batch_size):
            enc = self.tokenizer(list(texts[i:i + self.config.eval_batch_size]), truncation=True,
                                 max_length=self.config.max_length, padding=True, return_tensors="pt")
            enc = {k: v.to(device) for k, v in enc.items()}
            with torch.inference_mode():
                out.append(self.model(**enc)["logits"].float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, sum(self.sizes)))

    def predict_proba(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Softmax probabilities per field, columns in the field's label order."""
        logits, probs, start = self._logits(list(texts)), {}, 0
        for spec, n in zip(self.schema.fields, self.sizes):
            block = logits[:, start:start + n]
            block = np.exp(block - block.max(axis=1, keepdims=True))
            probs[spec.name] = block / block.sum(axis=1, keepdims=True)
            start += n
        return probs

    def predict(self, texts):
        probs = self.predict_proba(texts)
        columns = {spec.name: np.argmax(probs[spec.name], axis=1) for spec in self.schema.fields}
        return [{spec.name: spec.labels[int(columns[spec.name][i])] for spec in self.schema.fields}
                for i in range(len(texts))]

    def save_files(self, out_dir: Path) -> None:
        import torch

        out_dir = Path(out_dir)
        self.model.encoder.save_pretrained(out_dir / ENCODER_DIR)
        self.tokenizer.save_pretrained(out_dir / ENCODER_DIR)
        torch.save({"heads": self.model.heads.state_dict(), "sizes": self.sizes}, out_dir / HEADS_FILE)

    @classmethod
    def load_files(cls, in_dir: Path, schema: TaskSchema, config: Any) -> "EncoderClassifier":
        import torch
        from transformers import AutoTokenizer

        clf = cls(schema, config)
        state = torch.load(Path(in_dir) / HEADS_FILE, map_location="cpu")
        if state["sizes"] != clf.sizes:
            raise ClassifierError(f"{in_dir}: saved heads have {state['sizes']} labels but the schema has {clf.sizes}")
        clf.tokenizer = AutoTokenizer.from_pretrained(Path(in_dir) / ENCODER_DIR)
        clf.model = _encoder_module(str(Path(in_dir) / ENCODER_DIR), clf.sizes, config.dropout)
        clf.model.heads.load_state_dict(state["heads"])
        clf.model.eval()
        return clf
