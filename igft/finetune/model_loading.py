"""Load a causal LM for (Q)LoRA fine-tuning, and build its LoRA config.

One entry point picks the backend that fits the machine:
- CUDA + bitsandbytes (quantize="auto" or "4bit"): QLoRA, 4-bit NF4 weights with double quantisation,
  prepared with `peft.prepare_model_for_kbit_training`.
- `backend="unsloth"` (only when asked): Unsloth's FastLanguageModel, whose own `get_peft_model` adds the
  LoRA layers (see `apply_lora`). Installing Unsloth alone never switches a run to it.
- CPU: plain fp32 weights (LoRA). quantize="4bit" is honoured on CPU too, because bitsandbytes >= 0.47
  runs NF4 on x86 CPUs (slowly); this is how CI executes the QLoRA code path.

Half precision: bf16 only on compute capability 8.0 or higher (Ampere+). `torch.cuda.is_bf16_supported()`
also says True on a T4 (7.5), where bf16 is emulated and slow, so a T4 gets fp16.

Several processes (`accelerate launch`): every process loads its copy onto the GPU of its *local* process
index (`device_map={"": local_index}`), never all onto GPU 0.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from typing import Any, Sequence

from igft.errors import IgftError
from igft.llm.local_models import resolve_model_path

logger = logging.getLogger(__name__)

QUANTIZE_CHOICES = ("auto", "4bit", "none")
BACKEND_CHOICES = ("auto", "hf", "unsloth")
# Attention + MLP projections of Llama-family models (SmolLM2, Llama, Mistral, Qwen): the usual QLoRA set.
DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class ModelLoadError(IgftError):
    """A model could not be loaded (bad path/id, missing optional dependency)."""


@dataclass(frozen=True)
class Backend:
    """What `load_causal_lm` will do: `kind` in {"unsloth", "qlora", "full"}, the torch dtype name, the device."""
    kind: str
    dtype: str
    device: str


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _cuda_available() -> bool:
    import torch
    return bool(torch.cuda.is_available())


def cuda_capability() -> tuple[int, int] | None:
    """(major, minor) of the current CUDA device, None without CUDA."""
    import torch
    if not torch.cuda.is_available():
        return None
    return tuple(torch.cuda.get_device_capability(local_process_index()))  # type: ignore[return-value]


def half_dtype(capability: tuple[int, int] | None) -> str:
    """bfloat16 from compute capability 8.0 (A100, L4, H100, RTX 30xx+), else float16 (T4, V100)."""
    return "bfloat16" if capability is not None and tuple(capability) >= (8, 0) else "float16"


def local_process_index() -> int:
    """This process's index on its machine under `accelerate launch` / torchrun (0 when run alone)."""
    for var in ("LOCAL_RANK", "LOCAL_PROCESS_INDEX"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def sharded_launch() -> bool:
    """True under `accelerate launch` with FSDP or DeepSpeed: they place (shard) the weights themselves."""
    return any(os.environ.get(var, "").lower() in ("1", "true")
               for var in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"))


def device_map_for_process() -> dict[str, int] | None:
    """Put the whole model on this process's own GPU (data parallel: one full copy per process);
    None under FSDP / DeepSpeed, which must not be given a device map."""
    return None if sharded_launch() else {"": local_process_index()}


def select_backend(quantize: str = "auto", *, backend: str = "auto", cuda: bool | None = None,
                   bitsandbytes: bool | None = None, unsloth: bool | None = None,
                   capability: tuple[int, int] | None = None) -> Backend:
    """Decide the loading backend from the machine (keyword arguments override detection, for tests)."""
    if quantize not in QUANTIZE_CHOICES:
        raise ModelLoadError(f"quantize must be one of {', '.join(QUANTIZE_CHOICES)}, got {quantize!r}")
    if backend not in BACKEND_CHOICES:
        raise ModelLoadError(f"backend must be one of {', '.join(BACKEND_CHOICES)}, got {backend!r}")
    cuda = _cuda_available() if cuda is None else cuda
    bitsandbytes = _installed("bitsandbytes") if bitsandbytes is None else bitsandbytes
    if backend == "unsloth":
        unsloth = _installed("unsloth") if unsloth is None else unsloth
        if not unsloth:
            raise ModelLoadError("--backend unsloth needs Unsloth; run: pip install unsloth (CUDA only), "
                                 "or use --backend hf")
        if not cuda:
            raise ModelLoadError("--backend unsloth needs a CUDA GPU; use --backend hf on this machine")
    if cuda:
        if capability is None:
            capability = cuda_capability()
        half = half_dtype(capability)
        if backend == "unsloth":
            return Backend("unsloth", half, "cuda")
        if quantize in ("auto", "4bit") and bitsandbytes:
            return Backend("qlora", half, "cuda")
        if quantize == "4bit":
            raise ModelLoadError("--quantize 4bit needs bitsandbytes; run: pip install bitsandbytes")
        return Backend("full", half, "cuda")
    if quantize == "4bit":
        if not bitsandbytes:
            raise ModelLoadError("--quantize 4bit needs bitsandbytes; run: pip install 'bitsandbytes>=0.47' "
                                 "(its CPU backend runs NF4 on x86), or use --quantize none")
        return Backend("qlora", "float32", "cpu")
    # CPU "auto": 4-bit on CPU is much slower than fp32 for small models, so plain LoRA in fp32.
    return Backend("full", "float32", "cpu")


def bnb_config(compute_dtype: str = "bfloat16", skip_modules: Sequence[str] | None = None) -> Any:
    """QLoRA's quantisation: 4-bit NormalFloat weights, double quantisation of the scales.

    `skip_modules` stay in full precision (a classification head that is trained whole)."""
    import torch
    from transformers import BitsAndBytesConfig
    extra: dict[str, Any] = {}
    if sharded_launch():  # FSDP / ZeRO-3 QLoRA shard the packed 4-bit weights as tensors of the compute dtype
        extra["bnb_4bit_quant_storage"] = getattr(torch, compute_dtype)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=getattr(torch, compute_dtype),
                              llm_int8_skip_modules=list(skip_modules) if skip_modules else None, **extra)


def _load_error(model_spec: str, what: str, exc: Exception) -> ModelLoadError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    hint = ("it is not a local folder and the hub is offline here (HF_HUB_OFFLINE=1): download it on a machine "
            "with network (huggingface-cli download ID) and pass the folder" if offline and not os.path.isdir(model_spec)
            else "pass a local model folder, an HF id available offline, or 'smollm2'")
    return ModelLoadError(f"cannot load {what} from {model_spec!r}: {first[:200]}; {hint}")


def load_tokenizer(model_spec: str) -> Any:
    """The tokenizer of a model spec (alias, local path or HF id), with a pad token set."""
    from transformers import AutoTokenizer
    path = resolve_model_path(model_spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, TypeError) as exc:
        raise _load_error(model_spec, "a tokenizer", exc) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(model_spec: str = "smollm2", *, quantize: str = "auto", dtype: str | None = None,
                   max_seq_len: int = 2048, backend: str = "auto", auto_class: Any = None,
                   model_kwargs: dict[str, Any] | None = None,
                   skip_quantization: Sequence[str] | None = None) -> tuple[Any, Any]:
    """Load (model, tokenizer) for fine-tuning. `model_spec`: 'smollm2', a local folder or an HF id.

    `quantize`: "auto" (QLoRA on CUDA with bitsandbytes, fp32 on CPU), "4bit" (force NF4), "none".
    `backend`: "auto"/"hf" (transformers + PEFT) or "unsloth" (only when asked). `dtype` overrides the
    weight dtype. `auto_class` (default AutoModelForCausalLM) lets the head classifier load
    AutoModelForSequenceClassification through the same placement and quantisation rules.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from igft.finetune.versions import check_versions
    chosen = select_backend(quantize, backend=backend)
    check_versions(with_bitsandbytes=chosen.kind == "qlora")
    path = resolve_model_path(model_spec)
    weight_dtype = dtype or chosen.dtype
    logger.info("loading %s with backend %s (%s on %s)", path, chosen.kind, weight_dtype, chosen.device)
    if chosen.kind == "unsloth":  # pragma: no cover - GPU only
        from unsloth import FastLanguageModel
        model, tokenizer = FastLanguageModel.from_pretrained(model_name=path, max_seq_length=max_seq_len,
                                                             load_in_4bit=quantize != "none",
                                                             dtype=getattr(torch, weight_dtype))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model._igft_backend = chosen.kind
        return model, tokenizer

    tokenizer = load_tokenizer(model_spec)
    kwargs: dict[str, Any] = {"dtype": getattr(torch, weight_dtype), **(model_kwargs or {})}
    if chosen.kind == "qlora":
        kwargs["quantization_config"] = bnb_config(chosen.dtype, skip_quantization)
    if chosen.device == "cuda" and device_map_for_process() is not None:  # pragma: no cover - GPU only
        kwargs["device_map"] = device_map_for_process()
    try:
        model = (auto_class or AutoModelForCausalLM).from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise _load_error(model_spec, "a model", exc) from exc
    if chosen.kind == "qlora":
        from peft import prepare_model_for_kbit_training
        # Gradient checkpointing saves most memory on GPU; on CPU it only costs time.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=chosen.device == "cuda")
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None and generation_config.pad_token_id is None:
        generation_config.pad_token_id = tokenizer.pad_token_id
    model._igft_backend = chosen.kind
    return model, tokenizer


def make_lora_config(r: int = 16, alpha: int = 32, dropout: float = 0.05, use_rslora: bool = False,
                     target_modules: Sequence[str] | str | None = None, task_type: str = "CAUSAL_LM",
                     modules_to_save: Sequence[str] | None = None,
                     trainable_token_indices: dict[str, list[int]] | None = None) -> Any:
    """A `peft.LoraConfig`. target_modules None -> attention + MLP projections; "all-linear" works too.

    `trainable_token_indices` makes only those rows of the named embedding / lm_head modules trainable
    (how tokens added for a chat template learn, without training whole embedding matrices).
    """
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
                      modules_to_save=list(modules_to_save) if modules_to_save else None,
                      trainable_token_indices=trainable_token_indices or None)


def apply_lora(model: Any, lora_config: Any) -> Any:
    """Wrap `model` with LoRA: Unsloth's own `get_peft_model` for an Unsloth model, PEFT's otherwise."""
    if getattr(model, "_igft_backend", None) == "unsloth":  # pragma: no cover - GPU only
        from unsloth import FastLanguageModel
        return FastLanguageModel.get_peft_model(model, r=lora_config.r, lora_alpha=lora_config.lora_alpha,
                                                lora_dropout=lora_config.lora_dropout,
                                                target_modules=lora_config.target_modules,
                                                use_rslora=lora_config.use_rslora, bias="none",
                                                use_gradient_checkpointing="unsloth")
    from peft import get_peft_model
    return upcast_trainable(get_peft_model(model, lora_config))


def upcast_trainable(model: Any) -> Any:
    """Keep every trainable parameter in fp32 (LoRA, a saved score head / lm_head, trainable token rows).

    With half-precision base weights, a module copied by `modules_to_save` would otherwise train in
    fp16, which the fp16 GradScaler refuses ("Attempting to unscale FP16 gradients") and bf16 rounds."""
    import torch
    for param in model.parameters():
        if param.requires_grad and param.dtype in (torch.float16, torch.bfloat16):
            param.data = param.data.float()
    return model


def inference_autocast(model: Any) -> Any:
    """On CUDA with half-precision base weights, an autocast context (the fp32 trainable modules kept by
    `upcast_trainable` then meet half inputs safely); a no-op context elsewhere."""
    import contextlib

    import torch
    first = next(model.parameters())
    if first.device.type != "cuda":
        return contextlib.nullcontext()
    halves = [p.dtype for p in model.parameters() if p.dtype in (torch.float16, torch.bfloat16)]
    return torch.autocast("cuda", dtype=halves[0]) if halves else contextlib.nullcontext()
