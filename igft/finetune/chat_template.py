"""Which chat template a model trains and generates with, and how prompts are rendered through it.

Training needs `{% generation %}` markers (TRL's assistant-only loss mask) and a stop token the model
can learn to emit. In order of preference (`resolve_training_template`):
1. "own":    the model's template, when it already has the markers;
2. "trl":    TRL's training variant of the model's template (`trl.chat_template_utils.
             get_training_chat_template`: Llama 3, Qwen2.5/3, Gemma, Phi-3, ... render exactly like the
             original, markers added), so the adapter generates with the text the model knows;
3. "chatml": igft's ChatML training template for any other template (Mistral, SmolLM2). Where the
             tokenizer lacks `<|im_start|>`/`<|im_end|>` they are added, and `trainable_token_indices`
             makes their embedding (and untied lm_head) rows trainable, so the model can learn to stop;
4. "plain":  a model without any chat template (a base model) gets PLAIN_TEMPLATE, which adds no
             tokens and ends each reply with the tokenizer's own eos token:

                 <system prompt>

                 ### User:
                 <message>

                 ### Assistant:
                 <reply><eos>

The base-model baseline (no adapter) always generates with its own template (plain when it has none).
Templates that reject a system message (Gemma, Mistral v0.1/v0.2) get the system text folded into the
first user turn (`render_prompt`, `fold_system`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

logger = logging.getLogger(__name__)

CHATML_TOKENS = ("<|im_start|>", "<|im_end|>")
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
PLAIN_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    "{%- elif message['role'] == 'assistant' %}"
    "{{ '### Assistant:\n' }}{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}{{ '\n\n' }}"
    "{%- else %}{{ '### User:\n' + message['content'] + '\n\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '### Assistant:\n' }}{%- endif %}"
)


@dataclass
class TemplatePlan:
    """The training template chosen for a tokenizer: where it came from and the tokens it needs added."""
    source: str  # "own" | "trl" | "chatml" | "plain"
    template: str
    added_tokens: list[str] = field(default_factory=list)
    stop_token: str | None = None


def has_generation_markers(template: Any) -> bool:
    if isinstance(template, dict):
        template = template.get("default")
    return bool(template) and "{% generation %}" in str(template).replace("{%-", "{%").replace("-%}", "%}")


def own_template(tokenizer: Any) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default")
    return template if isinstance(template, str) and template.strip() else None


def _trl_training_template(tokenizer: Any) -> str | None:
    """TRL's training variant of the tokenizer's template, None when TRL has none (or is too old for it)."""
    try:
        from trl.chat_template_utils import get_training_chat_template
    except ImportError:
        return None
    try:
        return get_training_chat_template(tokenizer)
    except (ValueError, TypeError, Exception) as exc:  # noqa: BLE001 - TRL raises ValueError for unknown ones
        logger.debug("TRL has no training template for this tokenizer: %s", exc)
        return None


def resolve_training_template(tokenizer: Any) -> TemplatePlan:
    """The template to train with (see the module docstring for the order)."""
    own = own_template(tokenizer)
    if own is None:
        return TemplatePlan("plain", PLAIN_TEMPLATE, stop_token=tokenizer.eos_token)
    if has_generation_markers(own):
        return TemplatePlan("own", own)
    trl_template = _trl_training_template(tokenizer)
    if trl_template:
        return TemplatePlan("trl", trl_template)
    vocab = tokenizer.get_vocab()
    missing = [t for t in CHATML_TOKENS if t not in vocab]
    return TemplatePlan("chatml", CHATML_TRAINING_TEMPLATE, added_tokens=missing, stop_token="<|im_end|>")


def install_training_template(tokenizer: Any) -> TemplatePlan:
    """Give the tokenizer its training template (adding ChatML tokens where needed) and a pad token."""
    plan = resolve_training_template(tokenizer)
    if plan.added_tokens:
        tokenizer.add_special_tokens({"additional_special_tokens": list(plan.added_tokens)})
    if plan.source == "chatml":
        tokenizer.eos_token = "<|im_end|>"  # generation stops on the template's end of turn
    tokenizer.chat_template = plan.template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    logger.info("chat template for training: %s%s", plan.source,
                f" (added tokens {plan.added_tokens})" if plan.added_tokens else "")
    return plan


def prepare_tokenizer(tokenizer: Any) -> bool:
    """Install the training template; True when tokens were added (the embeddings must then be resized)."""
    return bool(install_training_template(tokenizer).added_tokens)


def prepare_inference_tokenizer(tokenizer: Any) -> str:
    """A base model generates with its own template; one without gets PLAIN_TEMPLATE. Returns the source."""
    if own_template(tokenizer) is None:
        tokenizer.chat_template = PLAIN_TEMPLATE
        source = "plain"
    else:
        source = "own"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return source


def accepts_system(tokenizer: Any) -> bool:
    """Whether the tokenizer's template renders a system message (Gemma's and Mistral v0.1's raise)."""
    probe = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    try:
        tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    except Exception:  # noqa: BLE001 - jinja's TemplateError or raise_exception's own type
        return False
    return True


def fold_system(messages: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """Move a leading system message into the first user turn ("<system>\\n\\n<user text>")."""
    messages = [dict(m) for m in messages]
    if not messages or messages[0]["role"] != "system":
        return messages
    system, rest = messages[0]["content"], messages[1:]
    for m in rest:
        if m["role"] == "user":
            m["content"] = f"{system}\n\n{m['content']}"
            return rest
    return [{"role": "user", "content": system}, *rest]


def fit_messages(tokenizer: Any, messages: Sequence[dict[str, str]], system_ok: bool | None = None) -> list[dict[str, str]]:
    """The messages as the tokenizer's template accepts them (system folded where it is rejected)."""
    if system_ok is None:
        system_ok = accepts_system(tokenizer)
    return list(messages) if system_ok else fold_system(messages)


def render_prompt(tokenizer: Any, messages: Sequence[dict[str, str]], system_ok: bool | None = None) -> str:
    """The generation prompt text for `messages` (system folded where the template rejects it)."""
    return tokenizer.apply_chat_template(fit_messages(tokenizer, messages, system_ok), tokenize=False,
                                         add_generation_prompt=True)


def end_of_turn_token(tokenizer: Any) -> str:
    """The token the template closes an assistant turn with (`<|im_end|>`, `<|eot_id|>`, `<end_of_turn>`, eos)."""
    user = [{"role": "user", "content": "u"}]
    marker = "\u00a7igft\u00a7"
    try:
        prompt = render_prompt(tokenizer, user)
        full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": marker}], tokenize=False)
    except Exception:  # noqa: BLE001
        return tokenizer.eos_token
    tail = full[len(prompt):] if full.startswith(prompt) else full
    after = tail.split(marker, 1)[-1]
    special = sorted(set(tokenizer.all_special_tokens) | set(tokenizer.get_added_vocab()), key=len, reverse=True)
    stripped = after.lstrip()
    for token in special:
        if token and stripped.startswith(token):
            return token
    return tokenizer.eos_token


def trainable_token_indices(model: Any, tokenizer: Any, tokens: Sequence[str]) -> dict[str, list[int]] | None:
    """PEFT `trainable_token_indices` for `tokens`: their rows of the input embedding (a tied lm_head
    shares them; an untied one must be trained whole, see `output_modules_to_save`)."""
    if not tokens:
        return None
    ids = [int(tokenizer.convert_tokens_to_ids(t)) for t in tokens]
    names = {id(module): name for name, module in model.named_modules()}
    return {names[id(model.get_input_embeddings())].split(".")[-1]: ids}


def output_modules_to_save(model: Any, tokens: Sequence[str]) -> list[str]:
    """["lm_head"] when tokens were added and the output layer is not tied to the input embedding.

    A stop token the model must *emit* needs its lm_head row trained. TRL computes the loss through a
    fused lm_head that reads `lm_head.weight` / `.bias` directly, which PEFT's per-row wrapper does not
    expose, so an untied head is trained whole (TRL's own recommendation for added tokens)."""
    if not tokens:
        return []
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if output is None or output.weight is model.get_input_embeddings().weight:
        return []
    names = {id(module): name for name, module in model.named_modules()}
    return [names[id(output)].split(".")[-1]]
