"""Generate assistant replies for held-out conversations, with or without a LoRA adapter.

Backends:
- `hf` (default): transformers `generate`, left-padded batches, greedy (temperature 0) or sampling.
- `vllm`: vLLM with the LoRA adapter (`LoRARequest`) when vLLM and a GPU are present. The request
  building (`build_vllm_requests`) is pure and tested on CPU; the vLLM call itself has NOT been run
  by this package's CI (no GPU here).

Predictions are written as JSONL, one record per sample, flushed as they are produced; rerunning the
same command skips the samples already in the file (resume).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from igft.data import Dataset
from igft.errors import IgftError
from igft.finetune.chat_template import prepare_tokenizer
from igft.finetune.parsing import parse_output
from igft.finetune.sft_data import conversation_samples, resolve_system_prompt

logger = logging.getLogger(__name__)


class GenerationError(IgftError):
    """Generation cannot run (missing adapter, vLLM unavailable)."""


@dataclass
class GenerationSettings:
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    batch_size: int = 8
    seed: int = 0


def evaluation_samples(dataset: Dataset, fmt: str, system_prompt: str | None = None,
                       max_samples: int | None = None) -> list[dict[str, Any]]:
    """One sample per assistant turn: `prompt` (messages without the target), `reference`, `gold_intents`."""
    prompt_text = resolve_system_prompt(system_prompt, fmt)
    # Gold intents are optional here: a response-format evaluation needs none.
    samples = []
    for conv in dataset:
        probe = conversation_samples(conv, "response", prompt_text)
        for s in probe:
            samples.append({"id": f"{s['conversation_number']}:{s['turn']}", "conversation_number": s["conversation_number"],
                            "turn": s["turn"], "format": fmt, "prompt": s["messages"][:-1], "reference": s["reply"],
                            "gold_intents": s["intents"]})
    return samples[:max_samples] if max_samples else samples


def load_for_generation(model_spec: str | None, adapter: str | Path | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, adapter meta). With an adapter, the base defaults to the one it was trained on."""
    from igft.finetune.model_loading import load_causal_lm
    from igft.finetune.train import adapter_meta

    meta: dict[str, Any] = {}
    if adapter is not None:
        adapter = Path(adapter)
        if not (adapter / "adapter_config.json").exists():
            raise GenerationError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json); "
                                  "pass the adapter/ folder written by igft finetune")
        meta = adapter_meta(adapter)
    base = model_spec or meta.get("base_model") or "smollm2"
    model, tokenizer = load_causal_lm(base, quantize="none")
    if adapter is not None:
        from peft import PeftModel
        from transformers import AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained(adapter)  # carries the training chat template
        if len(tokenizer) != model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(len(tokenizer))
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()  # merged: faster generation
    else:
        if prepare_tokenizer(tokenizer):
            model.resize_token_embeddings(len(tokenizer))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer, meta


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def generate_texts(model: Any, tokenizer: Any, prompts: Sequence[list[dict[str, str]]],
                   settings: GenerationSettings = GenerationSettings(), progress: bool = True) -> list[str]:
    """Batched generation with the transformers backend; returns the decoded new text of each prompt."""
    import torch
    from tqdm.auto import tqdm

    tokenizer.padding_side = "left"  # decoder-only batching: pad on the left so new tokens line up
    torch.manual_seed(settings.seed)
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    outputs: list[str] = []
    kwargs: dict[str, Any] = {"max_new_tokens": settings.max_new_tokens, "pad_token_id": tokenizer.pad_token_id,
                              "eos_token_id": tokenizer.eos_token_id}
    if settings.temperature > 0:
        kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    for batch in tqdm(list(_batches(texts, settings.batch_size)), desc="generate", disable=not progress):
        enc = tokenizer(list(batch), return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(model.device) for k, v in enc.items()}
        with torch.no_grad():
            out = model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1]:]
        outputs.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    return outputs


def build_vllm_requests(tokenizer: Any, prompts: Sequence[list[dict[str, str]]], settings: GenerationSettings,
                        adapter: str | Path | None = None) -> dict[str, Any]:
    """The inputs of one `vllm.LLM.generate` call: prompt strings, SamplingParams kwargs, LoRARequest args."""
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    sampling = {"max_tokens": settings.max_new_tokens, "temperature": settings.temperature,
                "top_p": settings.top_p if settings.temperature > 0 else 1.0, "seed": settings.seed,
                "stop": [tokenizer.eos_token] if tokenizer.eos_token else []}
    lora = {"lora_name": "igft", "lora_int_id": 1, "lora_path": str(Path(adapter).resolve())} if adapter else None
    return {"prompts": texts, "sampling": sampling, "lora": lora}


def vllm_available() -> bool:
    import importlib.util
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch
    return bool(torch.cuda.is_available())


def generate_texts_vllm(model_path: str, tokenizer: Any, prompts: Sequence[list[dict[str, str]]],
                        settings: GenerationSettings, adapter: str | Path | None = None,
                        max_lora_rank: int = 64) -> list[str]:  # pragma: no cover - needs vLLM + GPU
    """Generation with vLLM (+ the LoRA adapter). Not run in this package's CI: no GPU there."""
    if not vllm_available():
        raise GenerationError("the vllm backend needs vLLM and a CUDA GPU; run: pip install vllm, or use --backend hf")
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest
    req = build_vllm_requests(tokenizer, prompts, settings, adapter)
    llm = LLM(model=model_path, enable_lora=adapter is not None, max_lora_rank=max_lora_rank, seed=settings.seed)
    lora = LoRARequest(**req["lora"]) if req["lora"] else None
    outs = llm.generate(req["prompts"], SamplingParams(**req["sampling"]), lora_request=lora)
    return [o.outputs[0].text for o in outs]


def _done_ids(path: Path) -> set[str]:
    if not path.exists():
        return set()
    done = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                done.add(json.loads(line)["id"])
            except (ValueError, KeyError):
                continue  # a line cut by an interrupted run: regenerated
    return done


def generate_predictions(samples: Sequence[dict[str, Any]], out_path: str | Path, *, model_spec: str | None = None,
                         adapter: str | Path | None = None, backend: str = "hf",
                         settings: GenerationSettings = GenerationSettings(), progress: bool = True,
                         loaded: tuple[Any, Any] | None = None) -> list[dict[str, Any]]:
    """Generate, parse and append prediction records to `out_path` (JSONL); resumes a partial file."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    done = _done_ids(out_path)
    todo = [s for s in samples if s["id"] not in done]
    if todo:
        if loaded is not None:
            model, tokenizer = loaded
        else:
            model, tokenizer, _ = load_for_generation(model_spec, adapter)
        name = f"{model_spec or 'base'}" + (f"+{adapter}" if adapter else "")
        for chunk in _batches(todo, settings.batch_size):
            prompts = [s["prompt"] for s in chunk]
            if backend == "vllm":  # pragma: no cover - GPU only
                texts = generate_texts_vllm(model.name_or_path, tokenizer, prompts, settings, adapter)
            elif backend == "hf":
                texts = generate_texts(model, tokenizer, prompts, settings, progress=False)
            else:
                raise GenerationError(f"unknown generation backend {backend!r}; use hf or vllm")
            with open(out_path, "a", encoding="utf-8") as f:
                for s, text in zip(chunk, texts):
                    parsed = parse_output(text, s["format"])
                    record = {**{k: v for k, v in s.items() if k != "prompt"}, "model": name, "output": text,
                              "reply": parsed.reply, "intents": parsed.intents, "malformed": parsed.malformed,
                              "malformed_reasons": parsed.reasons}
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
            logger.info("generated %d/%d", min(len(_done_ids(out_path)), len(samples)), len(samples))
    return read_predictions(out_path)


def read_predictions(path: str | Path) -> list[dict[str, Any]]:
    """Prediction records of a JSONL file written by `generate_predictions` (cut lines skipped)."""
    path = Path(path)
    if not path.exists():
        raise GenerationError(f"prediction file {path} does not exist; run igft generate first")
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records
