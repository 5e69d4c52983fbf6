"""Load a causal LM for (Q)LoRA fine-tuning, and build its LoRA config.

One entry point picks the backend that fits the machine:
- CUDA + bitsandbytes (quantize="auto" or "4bit"): QLoRA, 4-bit NF4 weights with double quantisation,
  bf16 compute when the GPU supports it, prepared with `peft.prepare_model_for_kbit_training`.
- CUDA + Unsloth installed (quantize="auto"): Unsloth's FastLanguageModel (same QLoRA recipe, faster kernels).
- CPU: plain fp32 weights (LoRA). quantize="4bit" is honoured on CPU too, because bitsandbytes >= 0.47
  runs NF4 on x86 CPUs (slowly); this is how the QLoRA code path gets tested on a machine without GPU.

The GPU paths (CUDA QLoRA, Unsloth) are decided by `select_backend`, a pure function, so their choice
logic is tested on CPU; they have NOT been run on a GPU by this package's CI.
"""
from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from typing import Any, Sequence

from igft.errors import IgftError
from igft.llm.local_models import resolve_model_path

logger = logging.getLogger(__name__)

QUANTIZE_CHOICES = ("auto", "4bit", "none")
# Attention + MLP projections of Llama-family models (SmolLM2, Llama, Mistral, Qwen): the usual QLoRA set.
DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class ModelLoadError(IgftError):
    """A model could not be loaded (bad path/id, missing optional dependency)."""


@dataclass(frozen=True)
class Backend:
    """What `load_causal_lm` will do: `kind` in {"unsloth", "qlora", "full"}, and the torch dtype name."""
    kind: str
    dtype: str
    device: str


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _cuda_available() -> bool:
    import torch
    return bool(torch.cuda.is_available())


def select_backend(quantize: str = "auto", *, cuda: bool | None = None, bitsandbytes: bool | None = None,
                   unsloth: bool | None = None, bf16_supported: bool | None = None) -> Backend:
    """Decide the loading backend from the machine (arguments override detection, for tests)."""
    if quantize not in QUANTIZE_CHOICES:
        raise ModelLoadError(f"quantize must be one of {', '.join(QUANTIZE_CHOICES)}, got {quantize!r}")
    cuda = _cuda_available() if cuda is None else cuda
    bitsandbytes = _installed("bitsandbytes") if bitsandbytes is None else bitsandbytes
    unsloth = _installed("unsloth") if unsloth is None else unsloth
    if cuda:
        if bf16_supported is None:
            import torch
            bf16_supported = bool(torch.cuda.is_bf16_supported())
        half = "bfloat16" if bf16_supported else "float16"
        if quantize == "auto" and unsloth:
            return Backend("unsloth", half, "cuda")
        if quantize in ("auto", "4bit") and bitsandbytes:
            return Backend("qlora", half, "cuda")
        if quantize == "4bit":
            raise ModelLoadError("quantize='4bit' needs bitsandbytes; run: pip install bitsandbytes")
        return Backend("full", half, "cuda")
    if quantize == "4bit":
        if not bitsandbytes:
            raise ModelLoadError("quantize='4bit' needs bitsandbytes; run: pip install bitsandbytes (>= 0.47 for CPU)")
        return Backend("qlora", "float32", "cpu")
    # CPU "auto": 4-bit on CPU is much slower than fp32 for small models, so plain LoRA in fp32.
    return Backend("full", "float32", "cpu")


def bnb_config(compute_dtype: str = "bfloat16") -> Any:
    """QLoRA's quantisation: 4-bit NormalFloat weights, double quantisation of the scales."""
    import torch
    from transformers import BitsAndBytesConfig
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=getattr(torch, compute_dtype))


def load_tokenizer(model_spec: str) -> Any:
    """The tokenizer of a model spec (alias, local path or HF id), with a pad token set."""
    from transformers import AutoTokenizer
    path = resolve_model_path(model_spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load a tokenizer from {model_spec!r} ({exc.__class__.__name__}); "
                             "pass a local model folder, an HF id available offline, or 'smollm2'") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(model_spec: str = "smollm2", *, quantize: str = "auto", dtype: str | None = None,
                   max_seq_len: int = 2048) -> tuple[Any, Any]:
    """Load (model, tokenizer) for fine-tuning. `model_spec`: 'smollm2', a local folder or an HF id.

    `quantize`: "auto" (QLoRA on CUDA with bitsandbytes, Unsloth when installed, fp32 on CPU),
    "4bit" (force NF4), "none" (never quantize). `dtype` overrides the weight dtype ("float32", ...).
    """
    import torch
    from transformers import AutoModelForCausalLM

    backend = select_backend(quantize)
    path = resolve_model_path(model_spec)
    weight_dtype = dtype or backend.dtype
    logger.info("loading %s with backend %s (%s on %s)", path, backend.kind, weight_dtype, backend.device)
    if backend.kind == "unsloth":  # pragma: no cover - GPU only
        from unsloth import FastLanguageModel
        model, tokenizer = FastLanguageModel.from_pretrained(model_name=path, max_seq_length=max_seq_len,
                                                             load_in_4bit=True, dtype=getattr(torch, weight_dtype))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model._igft_backend = backend.kind
        return model, tokenizer

    tokenizer = load_tokenizer(model_spec)
    kwargs: dict[str, Any] = {"dtype": getattr(torch, weight_dtype)}
    if backend.kind == "qlora":
        kwargs["quantization_config"] = bnb_config(backend.dtype if backend.device == "cuda" else "float32")
        if backend.device == "cuda":  # pragma: no cover - GPU only
            kwargs["device_map"] = {"": 0}
    elif backend.device == "cuda":  # pragma: no cover - GPU only
        kwargs["device_map"] = {"": 0}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load a causal LM from {model_spec!r} ({exc}); pass a local model folder, "
                             "an HF id available offline, or 'smollm2'") from exc
    if backend.kind == "qlora":
        from peft import prepare_model_for_kbit_training
        # Gradient checkpointing saves most memory on GPU; on CPU it only costs time.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=backend.device == "cuda")
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    model._igft_backend = backend.kind
    return model, tokenizer


def make_lora_config(r: int = 16, alpha: int = 32, dropout: float = 0.05, use_rslora: bool = False,
                     target_modules: Sequence[str] | str | None = None, task_type: str = "CAUSAL_LM",
                     modules_to_save: Sequence[str] | None = None) -> Any:
    """A `peft.LoraConfig`. target_modules None -> attention + MLP projections; "all-linear" works too."""
    from peft import LoraConfig
    if r <= 0:
        raise IgftError(f"LoRA rank r must be positive, got {r}")
    if target_modules is None:
        targets: Any = list(DEFAULT_TARGET_MODULES)
    elif isinstance(target_modules, str):
        targets = target_modules if target_modules == "all-linear" else [t.strip() for t in target_modules.split(",") if t.strip()]
    else:
        targets = list(target_modules)
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, use_rslora=use_rslora, target_modules=targets,
                      task_type=task_type, bias="none",
                      modules_to_save=list(modules_to_save) if modules_to_save else None)
