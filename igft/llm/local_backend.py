"""Local models: a HF causal LM behind `LM` and a sentence-transformers model behind `Embedder`.

`LocalHFLM` runs `generate` with the tokenizer's chat template. It takes the bundled SmolLM2
(`local:smollm2`), any local folder or hub id (`hf:...`), or a PEFT adapter folder, for which it loads
the base model named in `adapter_config.json` and puts the adapter on top. Greedy decoding at
temperature 0, otherwise sampling seeded from `request.seed` (0 when unset) so replays are exact.
"""
from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from igft.errors import IgftError
from igft.llm.base import Completion, CompletionRequest
from igft.llm.local_models import minilm_path, resolve_model_path

logger = logging.getLogger(__name__)


class LocalModelError(IgftError):
    """A local model could not be loaded."""


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _load_causal_lm(path_or_id: str, device: str):
    """Load (model, tokenizer); a PEFT adapter folder loads its base model plus the adapter."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.float32 if device == "cpu" else "auto"
    folder = Path(path_or_id)
    adapter_config = folder / "adapter_config.json"
    try:
        if adapter_config.is_file():
            from peft import PeftModel

            base_name = json.loads(adapter_config.read_text())["base_model_name_or_path"]
            base_path = resolve_model_path(base_name)
            logger.info("loading base model %s (%s) for adapter %s", base_name, base_path, folder)
            model = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype)
            # Merged into the base for inference, as igft.finetune.generate does: one matmul per
            # projection instead of three, the same outputs up to float rounding.
            model = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
            has_tokenizer = (folder / "tokenizer_config.json").is_file()
            tokenizer = AutoTokenizer.from_pretrained(str(folder) if has_tokenizer else base_path)
        else:
            path = resolve_model_path(path_or_id)
            logger.info("loading causal LM %s", path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
            tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise LocalModelError(
            f"cannot load model {path_or_id!r}: {first}; pass a local model or adapter folder "
            f"(hf:/path/to/folder), local:smollm2, or make the model hub reachable") from err
    model.to(device)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


class LocalHFLM:
    """A HF causal LM (optionally with a PEFT adapter) as an `LM`. Thread-safe: one generate at a time."""

    def __init__(self, path_or_id: str, *, model: str | None = None, device: str | None = None):
        self.model = model or f"hf:{path_or_id}"
        self.device = device or _device()
        self._model, self.tokenizer = _load_causal_lm(path_or_id, self.device)
        self._lock = threading.Lock()

    def _prompt_ids(self, request: CompletionRequest):
        messages = [dict(m) for m in request.messages]
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:  # base models without a template: plain role-prefixed transcript
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
        encoded = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        return encoded["input_ids"].to(self.device), encoded["attention_mask"].to(self.device)

    def complete(self, request: CompletionRequest) -> Completion:
        import torch

        input_ids, attention_mask = self._prompt_ids(request)
        kwargs = dict(max_new_tokens=max(1, int(request.max_tokens)), pad_token_id=self.tokenizer.pad_token_id)
        if request.temperature and request.temperature > 0:
            kwargs.update(do_sample=True, temperature=float(request.temperature), top_p=1.0, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if request.stop:
            kwargs.update(stop_strings=list(request.stop), tokenizer=self.tokenizer)
        with self._lock:
            # The global torch RNG is seeded under the lock: the same request always samples the same text.
            torch.manual_seed(request.seed if request.seed is not None else 0)
            with torch.no_grad():
                output = self._model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        generated = output[0, input_ids.shape[1]:]
        text = self.tokenizer.decode(generated, skip_special_tokens=True)
        for stop in request.stop or ():
            cut = text.find(stop)
            if cut >= 0:
                text = text[:cut]
        return Completion(text=text.strip(), prompt_tokens=int(input_ids.shape[1]),
                          completion_tokens=int(generated.shape[0]), model=self.model)


class SentenceTransformerEmbedder:
    """A sentence-transformers model as an `Embedder` (batched, L2-normalised float32 rows)."""

    def __init__(self, path_or_id: str | None = None, *, model: str | None = None, batch_size: int = 64,
                 device: str | None = None):
        from sentence_transformers import SentenceTransformer

        path = str(minilm_path()) if path_or_id is None else resolve_model_path(path_or_id)
        self.model = model or ("local:minilm" if path_or_id is None else f"st:{path_or_id}")
        self.batch_size = batch_size
        try:
            self._st = SentenceTransformer(path, device=device or _device())
        except (OSError, ValueError) as err:
            raise LocalModelError(f"cannot load embedding model {path!r}: {str(err).splitlines()[0]}; "
                                  f"pass a local sentence-transformers folder or use local:minilm") from err
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        getter = getattr(self._st, "get_embedding_dimension", None) or self._st.get_sentence_embedding_dimension
        return int(getter())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vectors = self._st.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def MiniLMEmbedder(**kwargs) -> SentenceTransformerEmbedder:
    """The bundled all-MiniLM-L6-v2 (`local:minilm`)."""
    return SentenceTransformerEmbedder(None, **kwargs)
