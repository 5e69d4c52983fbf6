"""Fine-tuning configuration: one dataclass with help text, loadable from YAML and from CLI flags."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml

from igft.errors import IgftError


class ConfigError(IgftError):
    """A bad fine-tuning config value or file."""


@dataclass
class FinetuneConfig:
    # Data
    data: str | None = field(default=None, metadata={"help": "labeled conversations (CSV/JSONL); none = the toy conversations with gold intents"})
    format: str = field(default="intent+response", metadata={"help": "SFT target: 'response' or 'intent+response'"})
    system_prompt: str | None = field(default=None, metadata={"help": "'plain', 'two-step', a literal prompt, or none = fits the format"})
    val_fraction: float = field(default=0.1, metadata={"help": "fraction of conversations held out for validation"})
    max_conversations: int | None = field(default=None, metadata={"help": "use only the first N conversations (quick runs)"})
    overlength: str = field(default="trim_history", metadata={"help": "samples over max_seq_len: keep (the trainer cuts their end) | trim_history (drop oldest turns) | drop; always counted"})
    # Model and LoRA
    model: str = field(default="smollm2", metadata={"help": "base model: 'smollm2' (bundled), a local folder or an HF id"})
    quantize: str = field(default="auto", metadata={"help": "auto (QLoRA on CUDA+bitsandbytes, fp32 on CPU) | 4bit | none"})
    backend: str = field(default="auto", metadata={"help": "auto/hf (transformers + PEFT) | unsloth (only when asked; CUDA)"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r, or alpha / sqrt(r) with rsLoRA)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA branch"})
    use_rslora: bool = field(default=False, metadata={"help": "rank-stabilised LoRA scaling"})
    target_modules: str = field(default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", metadata={"help": "comma-separated module names, or 'all-linear'"})
    # Optimisation
    learning_rate: float = field(default=2e-4, metadata={"help": "peak learning rate (reached after warmup)"})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "learning-rate schedule after warmup: cosine | linear | constant"})
    warmup_ratio: float = field(default=0.05, metadata={"help": "fraction of steps spent warming up"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    num_epochs: float = field(default=3.0, metadata={"help": "epochs (ignored when max_steps > 0)"})
    max_steps: int = field(default=-1, metadata={"help": "optimizer steps; -1 = use num_epochs"})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "samples per device per step"})
    per_device_eval_batch_size: int = field(default=4, metadata={"help": "validation batch size"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    max_seq_len: int = field(default=1024, metadata={"help": "token limit of a sample (longer ones counted, see overlength)"})
    padding_free: bool = field(default=False, metadata={"help": "padding-free batches (packed sequences, no pad tokens)"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for memory"})
    seed: int = field(default=0, metadata={"help": "seed of the split, LoRA init and data order"})
    # Evaluation, checkpoints, logging
    eval_steps: int = field(default=50, metadata={"help": "validation loss every N steps (0 = only at the end)"})
    early_stopping_patience: int = field(default=0, metadata={"help": "stop after N evaluations without improvement (0 = off)"})
    save_steps: int = field(default=50, metadata={"help": "checkpoint every N steps (resume picks the last one)"})
    save_total_limit: int = field(default=2, metadata={"help": "checkpoints kept"})
    logging_steps: int = field(default=1, metadata={"help": "training loss logged every N steps"})
    resume: bool = field(default=True, metadata={"help": "resume from the last checkpoint in the output folder"})
    report_to: str = field(default="none", metadata={"help": "experiment tracker: none | tensorboard | wandb | mlflow (comma list allowed)"})
    precision: str = field(default="auto", metadata={"help": "auto (bf16 on compute capability >= 8.0, fp16 on older GPUs, fp32 on CPU) | bf16 | fp16 | fp32"})
    output_dir: str = field(default="runs/finetune", metadata={"help": "receives adapter/, config.yaml, train_log.jsonl, loss.png"})

    def validate(self) -> "FinetuneConfig":
        from igft.finetune.sft_data import FORMATS, OVERLENGTH_POLICIES
        if self.format not in FORMATS:
            raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.overlength not in OVERLENGTH_POLICIES:
            raise ConfigError(f"overlength must be one of {', '.join(OVERLENGTH_POLICIES)}, got {self.overlength!r}")
        if self.quantize not in ("auto", "4bit", "none"):
            raise ConfigError(f"quantize must be auto, 4bit or none, got {self.quantize!r}")
        for name, flag in (("lora_r", "--lora-r"), ("per_device_train_batch_size", "--batch-size"),
                           ("gradient_accumulation_steps", "--grad-accum"), ("max_seq_len", "--max-seq-len")):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{flag} must be a positive integer, got {getattr(self, name)}")
        from igft.finetune.trainer_args import check_report_to, check_precision, SCHEDULERS
        if self.lr_scheduler_type not in SCHEDULERS:
            raise ConfigError(f"lr_scheduler_type must be one of {', '.join(SCHEDULERS)}, got {self.lr_scheduler_type!r}")
        if self.backend not in ("auto", "hf", "unsloth"):
            raise ConfigError(f"backend must be auto, hf or unsloth, got {self.backend!r}")
        check_report_to(self.report_to)
        check_precision(self.precision)
        if self.max_steps == 0 or (self.max_steps < 0 and self.num_epochs <= 0):
            raise ConfigError("set --max-steps N > 0 or --num-epochs > 0")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "FinetuneConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown fine-tuning config key(s) {unknown}; known keys: {', '.join(sorted(known))}")
        return cls(**values).validate()

    @classmethod
    def from_yaml(cls, path: str | Path) -> "FinetuneConfig":
        try:
            values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc.__class__.__name__}: {exc}".splitlines()[0]) from exc
        if not isinstance(values, dict):
            raise ConfigError(f"config {path} must be a YAML mapping of key: value")
        return cls.from_dict(values)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(tp: Any) -> Any:
    if isinstance(tp, str):  # `from __future__ import annotations` keeps annotations as strings
        return {"int": int, "float": float, "bool": bool}.get(tp.split("|")[0].strip(), str)
    if get_origin(tp) is not None:
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0] if args else str
    return tp


def add_config_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per config field (help text from the dataclass); defaults are None = not given."""
    for f in fields(FinetuneConfig):
        if f.name in skip:
            continue
        tp = _base_type(f.type)
        help_text = f"{f.metadata.get('help', '')} (default: {f.default})"
        if tp is bool:
            parser.add_argument(_flag(f.name), dest=f.name, default=None, action=argparse.BooleanOptionalAction, help=help_text)
        else:
            parser.add_argument(_flag(f.name), dest=f.name, default=None, type=tp, help=help_text)


def config_from_args(args: argparse.Namespace, yaml_path: str | None = None) -> FinetuneConfig:
    """Defaults < YAML file < explicit CLI flags."""
    values = FinetuneConfig().to_dict()
    if yaml_path:
        values.update(FinetuneConfig.from_yaml(yaml_path).to_dict())
    for f in fields(FinetuneConfig):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    return FinetuneConfig.from_dict(values)
