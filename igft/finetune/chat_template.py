"""The chat template used for training: ChatML with `{% generation %}` markers.

TRL's `assistant_only_loss` computes the loss mask from `{% generation %}...{% endgeneration %}`
blocks; SmolLM2's own template has none (and injects a default system prompt). The training template
marks each assistant turn's content *and* its `<|im_end|>` as generated, so the model learns to stop.
It renders exactly like SmolLM2's template when a system message is given, so inference with the
saved tokenizer sees the same text as training.
"""
from __future__ import annotations

from typing import Any

CHATML_TRAINING_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{%- else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- endif %}"
)


def has_generation_markers(template: str | None) -> bool:
    return bool(template) and "{% generation %}" in template.replace("{%-", "{%").replace("-%}", "%}")


def training_chat_template(tokenizer: Any) -> str:
    """The tokenizer's own template when it already marks assistant turns, else ChatML with markers.

    ChatML needs `<|im_start|>` / `<|im_end|>` in the vocabulary to be efficient; for other tokenizers
    they are still added as special tokens by `prepare_tokenizer` (and the embeddings resized).
    """
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, str) and has_generation_markers(own):
        return own
    return CHATML_TRAINING_TEMPLATE


def prepare_tokenizer(tokenizer: Any) -> bool:
    """Install the training template (and ChatML tokens when missing). True when tokens were added."""
    template = training_chat_template(tokenizer)
    added = False
    if template is CHATML_TRAINING_TEMPLATE:
        vocab = tokenizer.get_vocab()
        missing = [t for t in ("<|im_start|>", "<|im_end|>") if t not in vocab]
        if missing:
            tokenizer.add_special_tokens({"additional_special_tokens": missing})
            added = True
        tokenizer.eos_token = "<|im_end|>"
    tokenizer.chat_template = template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return added
