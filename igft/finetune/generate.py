"""Generate assistant replies for held-out conversations, with or without a LoRA adapter.

Backends:
- `hf` (default): transformers `generate` over left-padded batches, greedy (temperature 0) or sampling;
  reports generated tokens per second. Callers may pass `logits_processor` (a list) or
  `prefix_allowed_tokens_fn` to constrain decoding (e.g. the intents block over a catalog).
- `vllm`: ONE `vllm.LLM` engine per run (`VLLMGenerator`), built from the base model's folder or id with
  `enable_lora` and `max_lora_rank` read from the adapter, which is served through `LoRARequest`; the
  HF model is never loaded. `--gpu-memory-utilization` and `--max-model-len` reach the engine. vLLM has
  no CPU wheels: its tests stand a fake `vllm` module in; on a GPU it has not been run by this package.

Prompts are rendered with the adapter's saved tokenizer (its training template) or, for the base model,
with the model's own template (system folded into the first user turn where the template rejects it).
Predictions are written as JSONL, one record per sample, flushed as they are produced; rerunning the
same command skips the samples already in the file (resume).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from igft.data import Dataset
from igft.errors import IgftError
from igft.finetune.versions import check_versions
from igft.finetune.chat_template import accepts_system, prepare_inference_tokenizer, render_prompt
from igft.finetune.parsing import parse_output
from igft.finetune.sft_data import conversation_samples, resolve_system_prompt

logger = logging.getLogger(__name__)
check_versions()  # at import: an old transformers / trl / peft / accelerate fails here, named, in one line
# vLLM compiles LoRA kernels for these ranks; an adapter's rank is rounded up to the next one.
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


class GenerationError(IgftError):
    """Generation cannot run (missing adapter, vLLM unavailable)."""


@dataclass
class GenerationSettings:
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    batch_size: int = 8
    seed: int = 0
    gpu_memory_utilization: float = 0.9  # vLLM: share of GPU memory the engine may take
    max_model_len: int | None = None  # vLLM: context length the engine reserves KV cache for (None = model's)


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


def check_adapter_dir(adapter: str | Path) -> Path:
    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise GenerationError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json); "
                              "pass the adapter/ folder written by igft finetune")
    return adapter


def load_for_generation(model_spec: str | None, adapter: str | Path | None = None, *,
                        merge: bool = True) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, adapter meta). With an adapter, the base defaults to the one it was trained on."""
    from igft.finetune.model_loading import load_causal_lm
    from igft.finetune.train import adapter_meta

    meta: dict[str, Any] = {}
    if adapter is not None:
        adapter = check_adapter_dir(adapter)
        meta = adapter_meta(adapter)
    base = model_spec or meta.get("base_model") or "smollm2"
    model, tokenizer = load_causal_lm(base, quantize="none")
    if adapter is not None:
        from peft import PeftModel
        from transformers import AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained(adapter)  # carries the training chat template
        if len(tokenizer) != model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(len(tokenizer))
        model = PeftModel.from_pretrained(model, str(adapter))
        if merge:
            model = model.merge_and_unload()  # merged: faster generation
    else:
        prepare_inference_tokenizer(tokenizer)  # the base model keeps its own template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer, meta


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def stop_token_ids(tokenizer: Any, model: Any = None) -> list[int]:
    """The tokenizer's eos and the model's generation eos ids (Llama 3 stops on <|eot_id|> and <|end_of_text|>)."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for t in ([configured] if isinstance(configured, int) else list(configured or [])):
        if t not in ids and t < len(tokenizer):
            ids.append(t)
    return ids


def generate_texts(model: Any, tokenizer: Any, prompts: Sequence[list[dict[str, str]]],
                   settings: GenerationSettings = GenerationSettings(), progress: bool = True, *,
                   logits_processor: Sequence[Any] | None = None,
                   prefix_allowed_tokens_fn: Callable[[int, Any], list[int]] | None = None,
                   stats: dict[str, float] | None = None) -> list[str]:
    """Batched generation with the transformers backend; returns the decoded new text of each prompt.

    `stats` (optional dict) accumulates `new_tokens`, `seconds` and `tokens_per_s` (generated tokens,
    up to each row's stop token, per second of `generate`).
    """
    import torch
    from tqdm.auto import tqdm

    from igft.finetune.model_loading import inference_autocast

    tokenizer.padding_side = "left"  # decoder-only batching: pad on the left so new tokens line up
    torch.manual_seed(settings.seed)
    system_ok = accepts_system(tokenizer)
    texts = [render_prompt(tokenizer, p, system_ok) for p in prompts]
    outputs: list[str] = []
    stops = stop_token_ids(tokenizer, model)
    kwargs: dict[str, Any] = {"max_new_tokens": settings.max_new_tokens, "pad_token_id": tokenizer.pad_token_id,
                              "eos_token_id": stops or None}
    if settings.temperature > 0:
        kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if logits_processor:
        from transformers import LogitsProcessorList
        kwargs["logits_processor"] = LogitsProcessorList(list(logits_processor))
    if prefix_allowed_tokens_fn is not None:
        kwargs["prefix_allowed_tokens_fn"] = prefix_allowed_tokens_fn
    stats = stats if stats is not None else {}
    device = next(model.parameters()).device
    for batch in tqdm(list(_batches(texts, settings.batch_size)), desc="generate", disable=not progress):
        enc = tokenizer(list(batch), return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(device) for k, v in enc.items()}
        start = time.perf_counter()
        with torch.no_grad(), inference_autocast(model):
            out = model.generate(**enc, **kwargs)
        stats["seconds"] = stats.get("seconds", 0.0) + time.perf_counter() - start
        new = out[:, enc["input_ids"].shape[1]:]
        stats["new_tokens"] = stats.get("new_tokens", 0) + sum(_generated_length(row, stops) for row in new.tolist())
        outputs.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    if stats.get("seconds"):
        stats["tokens_per_s"] = stats["new_tokens"] / stats["seconds"]
    return outputs


def _generated_length(row: Sequence[int], stops: Sequence[int]) -> int:
    """Tokens generated up to and including the first stop token (the padding after it is not generated)."""
    for i, t in enumerate(row):
        if t in stops:
            return i + 1
    return len(row)


def build_vllm_requests(tokenizer: Any, prompts: Sequence[list[dict[str, str]]], settings: GenerationSettings,
                        adapter: str | Path | None = None) -> dict[str, Any]:
    """The inputs of one `vllm.LLM.generate` call: prompt strings, SamplingParams kwargs, LoRARequest args."""
    system_ok = accepts_system(tokenizer)
    texts = [render_prompt(tokenizer, p, system_ok) for p in prompts]
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


def adapter_rank(adapter: str | Path) -> int:
    """The largest LoRA rank of an adapter (its `r`, or the largest of `rank_pattern`)."""
    config = json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8"))
    ranks = [int(config.get("r", 8))] + [int(v) for v in (config.get("rank_pattern") or {}).values()]
    return max(ranks)


def vllm_lora_rank(rank: int) -> int:
    """The smallest rank vLLM supports that holds `rank`."""
    for supported in VLLM_LORA_RANKS:
        if rank <= supported:
            return supported
    raise GenerationError(f"LoRA rank {rank} is above vLLM's largest ({VLLM_LORA_RANKS[-1]}); "
                          "merge the adapter (igft export --merge) and serve the merged model")


class VLLMGenerator:
    """One vLLM engine for a whole run: base model (+ LoRA adapter served through LoRARequest)."""

    def __init__(self, model_path: str, settings: GenerationSettings, adapter: str | Path | None = None):
        if not vllm_available():
            raise GenerationError("--backend vllm needs vLLM and a CUDA GPU; run: pip install 'vllm>=0.12' "
                                  "on a GPU machine, or use --backend hf")
        from vllm import LLM
        engine_args: dict[str, Any] = {"model": model_path, "seed": settings.seed,
                                       "gpu_memory_utilization": settings.gpu_memory_utilization}
        if settings.max_model_len:
            engine_args["max_model_len"] = settings.max_model_len
        self.lora = None
        if adapter is not None:
            from vllm.lora.request import LoRARequest
            adapter = check_adapter_dir(adapter)
            engine_args.update(enable_lora=True, max_lora_rank=vllm_lora_rank(adapter_rank(adapter)), max_loras=1)
            self.lora = LoRARequest("igft", 1, str(adapter.resolve()))
        self.settings = settings
        self.engine = LLM(**engine_args)

    def sampling_params(self, stop: Sequence[str] = (), structured: dict[str, Any] | None = None) -> Any:
        """SamplingParams; `structured` = {"choice": [...]} or {"json": schema} (vLLM >= 0.12 structured outputs)."""
        from vllm import SamplingParams
        s = self.settings
        kwargs: dict[str, Any] = {"max_tokens": s.max_new_tokens, "temperature": s.temperature,
                                  "top_p": s.top_p if s.temperature > 0 else 1.0, "seed": s.seed, "stop": list(stop)}
        if structured:
            from vllm.sampling_params import StructuredOutputsParams
            kwargs["structured_outputs"] = StructuredOutputsParams(**structured)
        return SamplingParams(**kwargs)

    def generate(self, prompt_texts: Sequence[str], stop: Sequence[str] = (),
                 structured: dict[str, Any] | None = None, stats: dict[str, float] | None = None) -> list[str]:
        start = time.perf_counter()
        outs = self.engine.generate(list(prompt_texts), self.sampling_params(stop, structured), lora_request=self.lora,
                                    use_tqdm=False)
        if stats is not None:
            stats["seconds"] = stats.get("seconds", 0.0) + time.perf_counter() - start
            stats["new_tokens"] = stats.get("new_tokens", 0) + sum(len(o.outputs[0].token_ids) for o in outs)
            stats["tokens_per_s"] = stats["new_tokens"] / stats["seconds"] if stats["seconds"] else 0.0
        return [o.outputs[0].text for o in outs]


def vllm_tokenizer(model_spec: str | None, adapter: str | Path | None) -> tuple[str, Any, dict[str, Any]]:
    """(base model path for the engine, tokenizer to render prompts, adapter meta) without loading weights."""
    from igft.finetune.model_loading import load_tokenizer
    from igft.finetune.train import adapter_meta
    from igft.llm.local_models import resolve_model_path

    meta = adapter_meta(check_adapter_dir(adapter)) if adapter is not None else {}
    base = model_spec or meta.get("base_model") or "smollm2"
    base_tokenizer = load_tokenizer(base)
    if adapter is None:
        prepare_inference_tokenizer(base_tokenizer)
        return resolve_model_path(base), base_tokenizer, meta
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    if len(tokenizer) != len(base_tokenizer):
        raise GenerationError(f"the adapter {adapter} added {len(tokenizer) - len(base_tokenizer)} token(s) to its base, "
                              "which vLLM's LoRA serving cannot load; merge it first (igft export --adapter "
                              f"{adapter} --merge --out DIR) and run --backend vllm --model DIR")
    return resolve_model_path(base), tokenizer, meta


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
                         loaded: tuple[Any, Any] | None = None,
                         logits_processor: Sequence[Any] | None = None,
                         prefix_allowed_tokens_fn: Callable[[int, Any], list[int]] | None = None,
                         stats: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Generate, parse and append prediction records to `out_path` (JSONL); resumes a partial file.

    `logits_processor` / `prefix_allowed_tokens_fn` constrain the hf backend's decoding; `stats`
    receives generated tokens, seconds and tokens/s of this call.
    """
    if backend not in ("hf", "vllm"):
        raise GenerationError(f"unknown generation backend {backend!r}; use hf or vllm")
    if backend == "vllm" and not vllm_available():  # before anything is loaded
        raise GenerationError("--backend vllm needs vLLM and a CUDA GPU; run: pip install 'vllm>=0.12' "
                              "on a GPU machine, or use --backend hf")
    if backend == "vllm" and (logits_processor or prefix_allowed_tokens_fn):
        raise GenerationError("logits_processor / prefix_allowed_tokens_fn work with --backend hf only")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    done = _done_ids(out_path)
    todo = [s for s in samples if s["id"] not in done]
    stats = stats if stats is not None else {}
    if todo:
        engine = None
        if backend == "vllm":
            model_path, tokenizer, _ = vllm_tokenizer(model_spec, adapter)
            engine = VLLMGenerator(model_path, settings, adapter)  # one engine for every batch of the run
            system_ok = accepts_system(tokenizer)
        elif loaded is not None:
            model, tokenizer = loaded
        else:
            model, tokenizer, _ = load_for_generation(model_spec, adapter)
        name = f"{model_spec or 'base'}" + (f"+{adapter}" if adapter else "")
        for chunk in _batches(todo, settings.batch_size):
            prompts = [s["prompt"] for s in chunk]
            if engine is not None:
                texts = engine.generate([render_prompt(tokenizer, p, system_ok) for p in prompts],
                                        stop=[tokenizer.eos_token] if tokenizer.eos_token else [], stats=stats)
            else:
                texts = generate_texts(model, tokenizer, prompts, settings, progress=False,
                                       logits_processor=logits_processor,
                                       prefix_allowed_tokens_fn=prefix_allowed_tokens_fn, stats=stats)
            with open(out_path, "a", encoding="utf-8") as f:
                for s, text in zip(chunk, texts):
                    parsed = parse_output(text, s["format"])
                    record = {**{k: v for k, v in s.items() if k != "prompt"}, "model": name, "output": text,
                              "reply": parsed.reply, "intents": parsed.intents, "malformed": parsed.malformed,
                              "malformed_reasons": parsed.reasons}
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
            logger.info("generated %d/%d", min(len(_done_ids(out_path)), len(samples)), len(samples))
        if stats.get("seconds"):
            logger.info("%s generation: %d tokens in %.1f s (%.1f tokens/s)", backend, stats["new_tokens"],
                        stats["seconds"], stats["tokens_per_s"])
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
