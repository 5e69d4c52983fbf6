"""What the two LLM classifiers (generative, head) share: Trainer options, checkpoints, training stats.

Both train through the Hugging Face Trainer machinery (TRL's SFTTrainer for the generative classifier,
transformers' Trainer for the head), so they get device placement, gradient accumulation, a warmup +
cosine/linear schedule, mixed precision where the device supports it (see igft.finetune.trainer_args),
gradient clipping, evaluation on the validation split with early stopping on its loss, checkpoints
and resume, and an experiment tracker, with the same option names:

    batch_size, grad_accum, max_steps, epochs, learning_rate, lr_scheduler, warmup, weight_decay,
    eval_steps, early_stopping_patience, save_steps, save_total_limit, checkpoint_dir, resume,
    report_to, precision, logging_steps, seed

`checkpoint_dir` None trains in a temporary folder (no resume); `igft classify train --out M` uses
M/checkpoints, so rerunning the same command resumes from the last checkpoint.
"""
from __future__ import annotations

import contextlib
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

logger = logging.getLogger(__name__)


@dataclass
class LLMTrainingOptions:
    model: str = field(default="smollm2", metadata={"help": "base model: smollm2, a local folder or an HF id"})
    quantize: str = field(default="auto", metadata={"help": "auto (QLoRA on CUDA+bitsandbytes, fp32 LoRA on CPU), 4bit, none"})
    backend: str = field(default="auto", metadata={"help": "auto/hf, or unsloth (only when asked; CUDA)"})
    lora_r: int = field(default=64, metadata={"help": "LoRA rank (the recipe's 64)"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (the recipe's 16)"})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout (the recipe's 0.1)"})
    target_modules: str | None = field(default=None, metadata={"help": "comma list or all-linear; None = attention+MLP"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the training rows (ignored when max_steps > 0)"})
    max_steps: int = field(default=0, metadata={"help": "optimizer steps; 0 = derive from epochs"})
    batch_size: int = field(default=8, metadata={"help": "training rows per device per micro-batch"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step (effective batch = batch_size x grad_accum x processes)"})
    learning_rate: float = field(default=2e-4, metadata={"help": "peak AdamW learning rate"})
    lr_scheduler: str = field(default="cosine", metadata={"help": "cosine | linear | constant (after warmup)"})
    warmup: float = field(default=0.03, metadata={"help": "warmup: a fraction of the steps (< 1) or a step count"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    eval_steps: int = field(default=50, metadata={"help": "validation loss every N steps (0 = never)"})
    early_stopping_patience: int = field(default=0, metadata={"help": "stop after N evaluations without improvement (0 = off)"})
    save_steps: int = field(default=100, metadata={"help": "checkpoint every N steps"})
    save_total_limit: int = field(default=2, metadata={"help": "checkpoints kept"})
    checkpoint_dir: str | None = field(default=None, metadata={"help": "folder for Trainer checkpoints; None = temporary (no resume)"})
    resume: bool = field(default=True, metadata={"help": "resume from the last checkpoint in checkpoint_dir"})
    report_to: str = field(default="none", metadata={"help": "none | tensorboard | wandb | mlflow"})
    precision: str = field(default="auto", metadata={"help": "auto (bf16 on compute capability >= 8.0, fp16 older GPUs, fp32 CPU) | bf16 | fp16 | fp32"})
    logging_steps: int = field(default=1, metadata={"help": "training loss logged every N steps"})
    eval_batch_size: int = field(default=16, metadata={"help": "rows per evaluation / inference batch"})
    seed: int = field(default=0, metadata={"help": "seed for LoRA / head init, dropout and batch order"})


def validate_options(cfg: LLMTrainingOptions) -> None:
    """Fail on bad options before any model is loaded (one line naming the option and the fix)."""
    from igft.classify.base import ClassifierError
    from igft.finetune.config import ConfigError
    from igft.finetune.model_loading import ModelLoadError, select_backend
    from igft.finetune.trainer_args import SCHEDULERS, check_precision, check_report_to

    for name in ("batch_size", "grad_accum", "eval_batch_size", "lora_r"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or value <= 0:
            raise ClassifierError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
    if cfg.lr_scheduler not in SCHEDULERS:
        raise ClassifierError(f"lr_scheduler must be one of {', '.join(SCHEDULERS)}, got {cfg.lr_scheduler!r}")
    try:
        check_report_to(cfg.report_to)
        check_precision(cfg.precision)
        select_backend(cfg.quantize, backend=cfg.backend)  # --quantize 4bit without bitsandbytes, unsloth without CUDA
    except (ConfigError, ModelLoadError) as exc:
        raise ClassifierError(str(exc)) from exc


def trainer_kwargs(cfg: LLMTrainingOptions, output_dir: str, has_eval: bool) -> dict[str, Any]:
    """TrainingArguments / SFTConfig keywords of a classifier config."""
    from igft.classify.base import ClassifierError
    from igft.finetune.config import ConfigError
    from igft.finetune.trainer_args import training_arguments

    if cfg.max_steps <= 0 and cfg.epochs <= 0:
        raise ClassifierError("set max_steps > 0 or epochs > 0")
    try:
        return training_arguments(
            output_dir=output_dir, max_steps=cfg.max_steps, num_epochs=cfg.epochs, batch_size=cfg.batch_size,
            eval_batch_size=cfg.eval_batch_size, grad_accum=cfg.grad_accum, learning_rate=cfg.learning_rate,
            scheduler=cfg.lr_scheduler, warmup=cfg.warmup, weight_decay=cfg.weight_decay, has_eval=has_eval,
            eval_steps=cfg.eval_steps, save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit,
            early_stopping_patience=cfg.early_stopping_patience, logging_steps=cfg.logging_steps, seed=cfg.seed,
            report_to=cfg.report_to, precision=cfg.precision, max_grad_norm=cfg.max_grad_norm)
    except ConfigError as exc:
        raise ClassifierError(str(exc)) from exc


@contextlib.contextmanager
def checkpoint_folder(cfg: LLMTrainingOptions) -> Iterator[tuple[str, str | None]]:
    """(folder for checkpoints, last checkpoint to resume from or None); a temporary folder when unset."""
    from transformers.trainer_utils import get_last_checkpoint

    if cfg.checkpoint_dir is None:
        with tempfile.TemporaryDirectory(prefix="igft-classifier-") as tmp:
            yield tmp, None
        return
    folder = Path(cfg.checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    last = get_last_checkpoint(str(folder)) if cfg.resume else None
    if last:
        logger.info("resuming from %s", last)
    yield str(folder), last


def training_stats(trainer: Any, n_train: int, resumed_from: str | None) -> dict[str, Any]:
    """Steps, first / last training loss, last / best validation loss, whether early stopping fired."""
    history = trainer.state.log_history
    losses = [r["loss"] for r in history if "loss" in r]
    evals = [r["eval_loss"] for r in history if "eval_loss" in r]
    planned = trainer.state.max_steps
    return {"steps": trainer.state.global_step, "planned_steps": planned, "n_train": n_train,
            "first_loss": losses[0] if losses else float("nan"), "last_loss": losses[-1] if losses else float("nan"),
            "losses": losses, "eval_losses": evals, "best_eval_loss": trainer.state.best_metric,
            "stopped_early": bool(evals) and trainer.state.global_step < planned,
            "resumed_from": resumed_from}


def model_device(model: Any) -> Any:
    """Where the model's first parameter lives (inputs must be moved there)."""
    return next(model.parameters()).device
