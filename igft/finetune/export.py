"""`igft export`: merge a LoRA adapter into its base model and write a standalone model folder.

The merged folder (safetensors weights + the adapter's tokenizer with its chat template) loads with
`AutoModelForCausalLM.from_pretrained(DIR)` and serves with `vllm serve DIR`. The base is loaded in
full precision (never 4-bit: merging into quantized weights loses the adapter's precision); `dtype`
picks what is written (default: the base's own config dtype, float32 when unknown).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from igft.errors import IgftError

logger = logging.getLogger(__name__)


class ExportError(IgftError):
    """The adapter cannot be exported as asked."""


def merge_adapter(adapter: str | Path, out_dir: str | Path, *, base_model: str | None = None,
                  dtype: str | None = None) -> Path:
    """Merge `adapter` into its base (or `base_model`) and save a plain transformers model to `out_dir`."""
    import torch

    from igft.finetune.generate import check_adapter_dir, load_for_generation

    adapter = check_adapter_dir(adapter)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if (out / "config.json").is_file():
            raise ExportError(f"{out} already holds a model; pass an empty or new --out folder")
        raise ExportError(f"{out} is not empty; pass an empty or new --out folder")
    if dtype is not None and not isinstance(getattr(torch, dtype, None), torch.dtype):
        raise ExportError(f"--dtype {dtype!r} is not a torch dtype; use float32, bfloat16 or float16")
    model, tokenizer, meta = load_for_generation(base_model, adapter, merge=True)
    if dtype is not None:
        model = model.to(getattr(torch, dtype))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    info: dict[str, Any] = {"merged_from_adapter": str(adapter.resolve()),
                            "base_model": base_model or meta.get("base_model"), **{k: v for k, v in meta.items()
                                                                                  if k != "base_model"}}
    (out / "igft_export.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    logger.info("merged %s into %s", adapter, out)
    return out
