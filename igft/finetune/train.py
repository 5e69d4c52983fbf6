"""LoRA / QLoRA supervised fine-tuning with TRL's SFTTrainer, loss on assistant tokens only.

`train(config)` writes into `config.output_dir`:
  adapter/           the PEFT adapter + the tokenizer (with the training chat template) + igft.json
  config.yaml        the resolved config
  data_stats.json    sample/token counts and every over-length sample (see sft_data)
  train.jsonl, validation.jsonl   the SFT samples
  train_log.jsonl    one line per logged step (loss, lr, eval_loss ...), appended across resumes
  loss.png           training and validation loss curves
  checkpoints/       Trainer checkpoints; rerunning the same command resumes from the last one
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from igft.data import Dataset, load_conversations
from igft.errors import IgftError
from igft.finetune.versions import check_versions
from igft.finetune.config import FinetuneConfig
from igft.finetune.model_loading import apply_lora, load_causal_lm, make_lora_config
from igft.finetune.sft_data import build_sft_data, to_hf_dataset, write_jsonl

logger = logging.getLogger(__name__)
check_versions()  # at import: an old transformers / trl / peft / accelerate fails here, named, in one line

ADAPTER_META = "igft.json"


class TrainingError(IgftError):
    """Fine-tuning cannot start (no samples, bad data)."""


@dataclass
class TrainResult:
    output_dir: Path
    adapter_dir: Path
    log: list[dict[str, Any]]
    data_stats: dict[str, Any]
    metrics: dict[str, Any]


def load_training_dataset(config: FinetuneConfig) -> Dataset:
    """The configured conversations, or the toy conversations with gold intents."""
    if config.data:
        dataset = load_conversations(config.data)
    else:
        from igft.resources import toy_conversations_path
        path = toy_conversations_path()
        if not path.exists():
            raise TrainingError(f"no --data given and the toy conversations {path} are missing; pass --data CSV")
        dataset = load_conversations(path)
    if config.max_conversations:
        dataset = dataset.head(config.max_conversations)
    return dataset


def _log_callback(path: Path) -> Any:
    from transformers import TrainerCallback

    class JsonlLog(TrainerCallback):
        """Append every Trainer log record (train loss per step, eval loss) to train_log.jsonl."""

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: D102 - Trainer hook
            if not state.is_world_process_zero or not logs:
                return
            record = {"step": state.global_step, "epoch": state.epoch,
                      **{k: v for k, v in logs.items() if isinstance(v, (int, float))}}
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    return JsonlLog()


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """train_log.jsonl records; after a resume, the latest record of each (step, kind) wins."""
    path = Path(path)
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    latest: dict[tuple, dict] = {}
    for r in records:
        kind = "eval" if "eval_loss" in r else ("train" if "loss" in r else "summary")
        latest[(r["step"], kind)] = r
    return sorted(latest.values(), key=lambda r: (r["step"], "eval_loss" in r))


def plot_loss(log: list[dict[str, Any]], path: str | Path) -> Path:
    """loss.png: training loss per step and validation loss at each evaluation."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    train = [(r["step"], r["loss"]) for r in log if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in log if "eval_loss" in r]
    if train:
        ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), marker="o", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (assistant tokens)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def sft_config(config: FinetuneConfig, checkpoint_dir: Path, has_eval: bool, cuda: bool | None = None) -> Any:
    """TRL SFTConfig for a FinetuneConfig (precision, schedule, evaluation and tracker: see trainer_args)."""
    from trl import SFTConfig

    from igft.finetune.trainer_args import training_arguments

    common = training_arguments(
        output_dir=str(checkpoint_dir), max_steps=config.max_steps, num_epochs=config.num_epochs,
        batch_size=config.per_device_train_batch_size, eval_batch_size=config.per_device_eval_batch_size,
        grad_accum=config.gradient_accumulation_steps, learning_rate=config.learning_rate,
        scheduler=config.lr_scheduler_type, warmup=config.warmup_ratio, weight_decay=config.weight_decay,
        has_eval=has_eval, eval_steps=config.eval_steps, save_steps=config.save_steps,
        save_total_limit=config.save_total_limit, early_stopping_patience=config.early_stopping_patience,
        logging_steps=config.logging_steps, seed=config.seed, report_to=config.report_to, precision=config.precision)
    return SFTConfig(
        **common,
        # Loss on the final assistant turn only: completion mask (prompt/completion samples) AND the
        # {% generation %} mask of the training template (its end-of-turn token included, so the model learns to stop).
        assistant_only_loss=True,
        completion_only_loss=True,
        # Padding-free = BFD packing of whole samples into max_seq_len rows, separated by position ids.
        packing=config.padding_free,
        packing_strategy="bfd",
        max_length=config.max_seq_len,
        **({"gradient_checkpointing": True} if config.gradient_checkpointing else {}),
        remove_unused_columns=True,
    )


def last_checkpoint(checkpoint_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint
    return get_last_checkpoint(str(checkpoint_dir)) if checkpoint_dir.is_dir() else None


def make_trainer(model: Any, tokenizer: Any, train_samples: list[dict[str, Any]], val_samples: list[dict[str, Any]],
                 config: FinetuneConfig, checkpoint_dir: Path, extra_callbacks: list[Any] | None = None) -> Any:
    """An SFTTrainer over prompt/completion samples (tokenizer must carry the training chat template)."""
    from trl import SFTTrainer

    from igft.finetune.chat_template import accepts_system, fold_system
    from igft.finetune.trainer_args import early_stopping

    args = sft_config(config, checkpoint_dir, has_eval=bool(val_samples))
    callbacks = list(extra_callbacks or []) + early_stopping(args, config.early_stopping_patience)
    if not accepts_system(tokenizer):  # Gemma, Mistral v0.1: the system prompt goes into the first user turn
        train_samples = [{**s, "messages": fold_system(s["messages"])} for s in train_samples]
        val_samples = [{**s, "messages": fold_system(s["messages"])} for s in val_samples]
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=to_hf_dataset(train_samples, prompt_completion=True),
        eval_dataset=to_hf_dataset(val_samples, prompt_completion=True) if val_samples else None,
        processing_class=tokenizer,
        callbacks=callbacks,
    )


def train(config: FinetuneConfig, dataset: Dataset | None = None) -> TrainResult:
    """Fine-tune `config.model` with LoRA on the SFT samples of `dataset` (or `config.data`)."""
    from transformers import set_seed

    from igft.finetune.chat_template import (install_training_template, output_modules_to_save,
                                             trainable_token_indices)

    config.validate()
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint_dir = out / "checkpoints"
    set_seed(config.seed)
    dataset = dataset if dataset is not None else load_training_dataset(config)

    model, tokenizer = load_causal_lm(config.model, quantize=config.quantize, max_seq_len=config.max_seq_len,
                                      backend=config.backend)
    plan = install_training_template(tokenizer)
    if plan.added_tokens:
        model.resize_token_embeddings(len(tokenizer))
    data = build_sft_data(dataset, config.format, system_prompt=config.system_prompt, tokenizer=tokenizer,
                          max_seq_len=config.max_seq_len, overlength=config.overlength,
                          val_fraction=config.val_fraction, seed=config.seed)
    if not data.train:
        raise TrainingError(f"no training samples from {dataset.source} ({len(dataset)} conversations): "
                            "the data needs assistant messages; check the file or lower --val-fraction")
    main_process = is_main_process()
    if main_process:  # under accelerate launch every rank builds the same data; one writes it
        write_jsonl(data.train, out / "train.jsonl")
        write_jsonl(data.validation, out / "validation.jsonl")
        (out / "data_stats.json").write_text(json.dumps({**data.stats, "chat_template": plan.source}, indent=2),
                                             encoding="utf-8")
        config.save(out / "config.yaml")

    lora = make_lora_config(config.lora_r, config.lora_alpha, config.lora_dropout, config.use_rslora,
                            config.target_modules,
                            modules_to_save=output_modules_to_save(model, plan.added_tokens),
                            trainable_token_indices=trainable_token_indices(model, tokenizer, plan.added_tokens))
    peft_model = apply_lora(model, lora)
    trainer = make_trainer(peft_model, tokenizer, data.train, data.validation, config, checkpoint_dir,
                           extra_callbacks=[_log_callback(out / "train_log.jsonl")])
    resume_from = last_checkpoint(checkpoint_dir) if config.resume else None
    if resume_from:
        logger.info("resuming from %s", resume_from)
    train_output = trainer.train(resume_from_checkpoint=resume_from)
    metrics = {**train_output.metrics, "world_size": trainer.args.world_size}
    evals = [r for r in trainer.state.log_history if "eval_loss" in r]
    if data.validation and (not evals or evals[-1].get("step") != trainer.state.global_step):
        metrics.update(trainer.evaluate())  # the last step was not an evaluation step
    elif evals:
        metrics.update({k: v for k, v in evals[-1].items() if k.startswith("eval_")})

    adapter_dir = out / "adapter"
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        trainer.model.save_pretrained(adapter_dir)
        tokenizer.save_pretrained(adapter_dir)
        _name_portable_base(adapter_dir, config.model)
        meta = {"format": config.format, "system_prompt": data.stats["system_prompt"], "base_model": config.model,
                "max_seq_len": config.max_seq_len, "chat_template": plan.source}
        (adapter_dir / ADAPTER_META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
        plot_loss(read_log(out / "train_log.jsonl"), out / "loss.png")
    trainer.accelerator.wait_for_everyone()
    log = read_log(out / "train_log.jsonl")
    return TrainResult(out, adapter_dir, log, {**data.stats, "chat_template": plan.source}, metrics)


def is_main_process() -> bool:
    """True on the main process of an `accelerate launch` / torchrun run, and always when run alone."""
    import os
    return os.environ.get("RANK", "0") in ("", "0")


def _name_portable_base(adapter_dir: Path, model: str) -> None:
    """PEFT records the base as the folder it was loaded from; for igft's bundled models that is a
    machine-specific cache path, so record the alias (`smollm2`) that every igft install resolves."""
    from igft.llm.local_models import resolve_model_path

    if resolve_model_path(model) == model:  # an HF id or a folder of the user's: keep it as PEFT wrote it
        return
    path = adapter_dir / "adapter_config.json"
    adapter_config = json.loads(path.read_text(encoding="utf-8"))
    adapter_config["base_model_name_or_path"] = model
    path.write_text(json.dumps(adapter_config, indent=2, sort_keys=True), encoding="utf-8")


def adapter_meta(adapter_dir: str | Path) -> dict[str, Any]:
    """The format / system prompt / base model an igft adapter was trained with ({} for foreign adapters)."""
    path = Path(adapter_dir) / ADAPTER_META
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

