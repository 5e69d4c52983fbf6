"""Tiny random causal LMs of several families, built from configs, with BPE tokenizers trained here.

No hub download: the tokenizer is trained in a fraction of a second on the toy conversations plus the
template words; each family gets the special tokens and the chat template its real models ship
(Llama 3, Qwen2.5 and Gemma from TRL's bundled copies of the originals; Mistral v0.1's template, which
rejects a system message, is written out below). `template=None` builds a model without a chat template.
"""
from __future__ import annotations

from pathlib import Path

TRL_TEMPLATES = {"llama": "llama3.jinja", "qwen2": "qwen2_5.jinja", "gemma": "gemma.jinja"}
# mistralai/Mistral-7B-Instruct-v0.1's template: no system role, strict user/assistant alternation.
MISTRAL_V01_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)
SPECIALS = {
    "llama": dict(bos="<|begin_of_text|>", eos="<|eot_id|>", extra=["<|start_header_id|>", "<|end_header_id|>", "<|end_of_text|>"]),
    "qwen2": dict(bos=None, eos="<|im_end|>", extra=["<|im_start|>", "<|endoftext|>"]),
    "gemma": dict(bos="<bos>", eos="<eos>", extra=["<start_of_turn>", "<end_of_turn>", "<pad>"]),
    "mistral": dict(bos="<s>", eos="</s>", extra=["<unk>"]),
}


def _corpus() -> list[str]:
    from igft.resources import toy_conversations_path
    import pandas as pd

    texts = pd.read_csv(toy_conversations_path())["conversation"].astype(str).tolist()
    words = ["system", "user", "assistant", "model", "Intents:", "Responses:", "### User:", "### Assistant:",
             "[INST]", "[/INST]", '{"intent": "', '"}', "You are a helpful customer support assistant."]
    return texts + words * 20


def train_tokenizer(family: str, vocab_size: int = 600):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    spec = SPECIALS[family]
    specials = [t for t in [spec["bos"], spec["eos"], *spec["extra"]] if t]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=spec["bos"], eos_token=spec["eos"],
                                   pad_token="<pad>" if family == "gemma" else None)
    return fast


def build_tiny_model(family: str, out_dir: str | Path, *, template: str | None | bool = True, seed: int = 0,
                     tie_embeddings: bool | None = None) -> Path:
    """Write a tiny random `family` model + tokenizer to out_dir; template True = the family's own."""
    import torch
    import transformers

    out = Path(out_dir)
    tokenizer = train_tokenizer(family)
    if template is True:
        if family == "mistral":
            template = MISTRAL_V01_TEMPLATE
        else:
            import trl
            template = (Path(trl.__file__).parent / "chat_templates" / TRL_TEMPLATES[family]).read_text(encoding="utf-8")
    tokenizer.chat_template = template or None
    size = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    config_cls = {"llama": transformers.LlamaConfig, "qwen2": transformers.Qwen2Config,
                  "gemma": transformers.GemmaConfig, "mistral": transformers.MistralConfig}[family]
    extra = {"head_dim": 16} if family == "gemma" else {}
    tie = (family in ("gemma", "qwen2")) if tie_embeddings is None else tie_embeddings
    config = config_cls(**size, **ids, **extra, tie_word_embeddings=tie)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def tiny_model(family: str, template: str | None | bool = True, tie_embeddings: bool | None = None) -> Path:
    """A cached tiny model folder (built once per machine, atomically, so parallel tests can share it)."""
    import os
    import shutil
    import tempfile

    name = f"{family}-{'own' if template is True else 'none' if not template else 'custom'}-tie{tie_embeddings}-v1"
    root = Path(tempfile.gettempdir()) / "igft-tiny-models"
    final = root / name
    if (final / "config.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}-"))
    build_tiny_model(family, staging, template=template, tie_embeddings=tie_embeddings)
    try:
        os.replace(staging, final)
    except OSError:  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)
    return final
