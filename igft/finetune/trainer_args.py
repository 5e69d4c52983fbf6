"""Trainer arguments shared by Stage 2 (TRL SFTTrainer) and the LLM classifiers (SFTTrainer / Trainer).

One place decides mixed precision, the schedule, evaluation / checkpoint / early-stopping strategy and
the experiment tracker, so `igft finetune` and `igft classify train` behave the same on every device:
- precision "auto": bf16 on compute capability >= 8.0, fp16 on older GPUs (T4, V100), fp32 on CPU
  (CPU bf16 autocast is slow and TRL's bf16 default fails there);
- evaluation on the validation split every `eval_steps`; with early stopping, checkpoints are saved on
  the evaluation steps and the best (lowest eval loss) is loaded at the end;
- `report_to`: none | tensorboard | wandb | mlflow (a comma list), checked to be installed up front.
"""
from __future__ import annotations

import importlib.util
from typing import Any

from igft.finetune.config import ConfigError

SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup", "cosine_with_restarts")
TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def check_report_to(value: str | None) -> list[str]:
    """The trackers of a --report-to value ([] for none); unknown or uninstalled ones are a ConfigError."""
    names = [v.strip() for v in str(value or "none").split(",") if v.strip()]
    if names in ([], ["none"]):
        return []
    for name in names:
        if name not in TRACKERS:
            raise ConfigError(f"--report-to {name!r} is not supported; use none, {', '.join(TRACKERS)} (comma list allowed)")
        if importlib.util.find_spec(TRACKERS[name]) is None:
            raise ConfigError(f"--report-to {name} needs the {name} package; run: pip install {name}, or use --report-to none")
    return names


def check_precision(value: str) -> str:
    if value not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return value


def mixed_precision(precision: str = "auto", *, cuda: bool | None = None,
                    capability: tuple[int, int] | None = None) -> dict[str, bool]:
    """Trainer's bf16 / fp16 flags for this device."""
    from igft.finetune.model_loading import _cuda_available, cuda_capability

    check_precision(precision)
    cuda = _cuda_available() if cuda is None else cuda
    if not cuda:
        if precision in ("bf16", "fp16"):
            raise ConfigError(f"--precision {precision} needs a CUDA GPU; use --precision auto or fp32 on CPU")
        return {"bf16": False, "fp16": False}
    capability = capability if capability is not None else cuda_capability()
    if precision == "auto":
        precision = "bf16" if capability is not None and tuple(capability) >= (8, 0) else "fp16"
    if precision == "bf16" and (capability is None or tuple(capability) < (8, 0)):
        raise ConfigError(f"--precision bf16 needs compute capability >= 8.0 (this GPU: {capability}); use fp16")
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def training_arguments(*, output_dir: str, max_steps: int, num_epochs: float, batch_size: int, eval_batch_size: int,
                       grad_accum: int, learning_rate: float, scheduler: str, warmup: float, weight_decay: float,
                       has_eval: bool, eval_steps: int, save_steps: int, save_total_limit: int,
                       early_stopping_patience: int, logging_steps: int, seed: int, report_to: str,
                       precision: str, max_grad_norm: float = 1.0) -> dict[str, Any]:
    """Keyword arguments common to `transformers.TrainingArguments` and `trl.SFTConfig`."""
    if grad_accum <= 0:
        raise ConfigError(f"--grad-accum must be a positive integer, got {grad_accum}")
    if batch_size <= 0:
        raise ConfigError(f"--batch-size must be a positive integer, got {batch_size}")
    if scheduler not in SCHEDULERS:
        raise ConfigError(f"lr scheduler must be one of {', '.join(SCHEDULERS)}, got {scheduler!r}")
    flags = mixed_precision(precision)
    evaluating = has_eval and eval_steps > 0
    early = early_stopping_patience > 0 and evaluating
    import torch
    return dict(
        output_dir=output_dir,
        max_steps=max_steps if max_steps > 0 else -1,
        num_train_epochs=num_epochs,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=eval_batch_size,
        gradient_accumulation_steps=grad_accum,
        learning_rate=learning_rate,
        lr_scheduler_type=scheduler,
        warmup_steps=warmup,  # a float in [0, 1) is a ratio of the total steps
        weight_decay=weight_decay,
        max_grad_norm=max_grad_norm,
        eval_strategy="steps" if evaluating else "no",
        eval_steps=eval_steps if evaluating else None,
        save_strategy="steps",
        # Early stopping keeps the best checkpoint, which needs saves on evaluation steps.
        save_steps=eval_steps if early else save_steps,
        save_total_limit=save_total_limit,
        load_best_model_at_end=early,
        metric_for_best_model="eval_loss" if early else None,
        greater_is_better=False if early else None,
        logging_steps=logging_steps,
        seed=seed,
        data_seed=seed,
        use_cpu=not torch.cuda.is_available(),
        report_to=check_report_to(report_to) or "none",
        disable_tqdm=False,
        dataloader_num_workers=0,
        # LoRA leaves most parameters frozen; DDP must not wait for their gradients.
        ddp_find_unused_parameters=False,
        **flags,
    )


def early_stopping(args: Any, patience: int) -> list[Any]:
    """[EarlyStoppingCallback] when the arguments evaluate and keep the best checkpoint, else []."""
    if not getattr(args, "load_best_model_at_end", False) or patience <= 0:
        return []
    from transformers import EarlyStoppingCallback
    return [EarlyStoppingCallback(early_stopping_patience=patience)]
