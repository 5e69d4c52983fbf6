"""Build chat-format SFT samples from labeled conversations (Stage 2 of the paper).

Consecutive messages of one role merge into one turn. Every assistant turn becomes one sample: the
system prompt, the conversation so far (customer turns as `user`, earlier assistant turns as their plain
replies) and, as the final assistant message, the target:
- format `response`:         the reply;
- format `intent+response`:  `Intents:\\n- a\\n- b\\nResponses:\\n<reply>` (the intents of the reply first).

Samples longer than `max_seq_len` tokens are never dropped silently: they are counted in `stats`, and
either kept (the trainer truncates them), trimmed (oldest history turns removed until they fit) or
dropped, as `overlength` says. Train/validation are split by conversation.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from igft.data import Conversation, Dataset
from igft.errors import IgftError

logger = logging.getLogger(__name__)

FORMATS = ("response", "intent+response")
OVERLENGTH_POLICIES = ("keep", "trim_history", "drop")

SYSTEM_PROMPTS = {
    "plain": "You are a helpful customer support assistant. Reply to the customer's last message.",
    "two-step": (
        "You are a helpful customer support assistant. Answer in two steps. First list the intents your reply "
        "will address, one per line after 'Intents:', each line starting with '- '. Then write 'Responses:' "
        "on its own line and, after it, the reply to the customer's last message."
    ),
}


class SFTDataError(IgftError):
    """The conversations cannot be turned into SFT samples (missing intents, unknown format)."""


@dataclass(frozen=True)
class Turn:
    """Consecutive messages of one role, merged. `indices` are the merged messages' positions."""
    role: str  # "customer" | "assistant"
    text: str
    intents: tuple[str, ...]
    indices: tuple[int, ...]


@dataclass
class SFTData:
    """Samples (dicts with `messages` and metadata) split by conversation, and the build statistics."""
    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    stats: dict[str, Any] = field(default_factory=dict)


def merge_turns(conversation: Conversation, separator: str = "\n") -> list[Turn]:
    """Merge consecutive messages of one role into turns; intents are kept in order, without repeats."""
    turns: list[Turn] = []
    for m in conversation.messages:
        intents = (m.intent,) if m.intent else ()
        if turns and turns[-1].role == m.role:
            last = turns[-1]
            merged_intents = last.intents + tuple(i for i in intents if i not in last.intents)
            turns[-1] = Turn(m.role, last.text + separator + m.text, merged_intents, last.indices + (m.index,))
        else:
            turns.append(Turn(m.role, m.text, intents, (m.index,)))
    return turns


def format_target(reply: str, intents: Sequence[str], fmt: str) -> str:
    """The assistant content the model learns to produce for one turn."""
    if fmt == "response":
        return reply
    if fmt == "intent+response":
        lines = "\n".join(f"- {i}" for i in intents)
        return f"Intents:\n{lines}\nResponses:\n{reply}"
    raise SFTDataError(f"unknown SFT format {fmt!r}; use one of: {', '.join(FORMATS)}")


def resolve_system_prompt(system_prompt: str | None, fmt: str) -> str | None:
    """'plain' / 'two-step' name a built-in prompt; None picks the one that fits the format; '' means none."""
    if system_prompt is None:
        return SYSTEM_PROMPTS["two-step" if fmt == "intent+response" else "plain"]
    if system_prompt in SYSTEM_PROMPTS:
        return SYSTEM_PROMPTS[system_prompt]
    return system_prompt or None


def conversation_samples(conversation: Conversation, fmt: str, system_prompt: str | None) -> list[dict[str, Any]]:
    """One sample per assistant turn of a conversation (history so far -> target)."""
    if fmt not in FORMATS:
        raise SFTDataError(f"unknown SFT format {fmt!r}; use one of: {', '.join(FORMATS)}")
    turns = merge_turns(conversation)
    head = [{"role": "system", "content": system_prompt}] if system_prompt else []
    samples, history = [], []
    for t, turn in enumerate(turns):
        if turn.role == "assistant":
            if fmt == "intent+response" and not turn.intents:
                raise SFTDataError(
                    f"conversation {conversation.number}, message(s) {list(turn.indices)}: the intent+response format "
                    "needs the intents of every assistant message; label the data first (igft label) or use --format response")
            target = format_target(turn.text, turn.intents, fmt)
            samples.append({
                "messages": head + history + [{"role": "assistant", "content": target}],
                "conversation_number": conversation.number,
                "turn": t,
                "message_indices": list(turn.indices),
                "reply": turn.text,
                "intents": list(turn.intents),
                "format": fmt,
            })
        # History keeps plain replies: at inference time the real conversation log has no intent lists.
        history.append({"role": "user" if turn.role == "customer" else "assistant", "content": turn.text})
    return samples


def count_tokens(tokenizer: Any, messages: list[dict[str, str]], chat_template: str | None = None,
                 fold: bool = False) -> int:
    """Tokens of a rendered sample, as the trainer will see it (`fold`: system folded into the first user turn)."""
    if fold:
        from igft.finetune.chat_template import fold_system
        messages = fold_system(messages)
    ids = tokenizer.apply_chat_template(messages, tokenize=True, chat_template=chat_template,
                                        return_dict=False)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return len(ids)


def _fit_length(sample: dict[str, Any], tokenizer: Any, max_seq_len: int, policy: str,
                chat_template: str | None, stats: dict[str, int], fold: bool = False) -> dict[str, Any] | None:
    n = count_tokens(tokenizer, sample["messages"], chat_template, fold)
    sample["n_tokens"] = n
    if n <= max_seq_len:
        return sample
    stats["n_overlength"] += 1
    if policy == "keep":
        stats["n_kept_overlength"] += 1
        return sample
    if policy == "trim_history":
        messages = list(sample["messages"])
        start = 1 if messages and messages[0]["role"] == "system" else 0
        # Remove the oldest history message while the sample is too long, keeping the target and the
        # message right before it (a reply with no context teaches nothing).
        while n > max_seq_len and len(messages) - start > 2:
            del messages[start]
            try:
                n = count_tokens(tokenizer, messages, chat_template, fold)
            except Exception:  # noqa: BLE001 - strict templates (Gemma, Mistral) reject a history opening on assistant
                while len(messages) - start > 2 and messages[start]["role"] == "assistant":
                    del messages[start]
                n = count_tokens(tokenizer, messages, chat_template, fold)
        if n <= max_seq_len:
            stats["n_trimmed"] += 1
            return {**sample, "messages": messages, "n_tokens": n}
    stats["n_dropped"] += 1
    return None


def build_sft_data(dataset: Dataset, fmt: str = "intent+response", *, system_prompt: str | None = None,
                   tokenizer: Any = None, max_seq_len: int | None = None, overlength: str = "trim_history",
                   chat_template: str | None = None, val_fraction: float = 0.1, seed: int = 0,
                   shuffle: bool = True) -> SFTData:
    """Samples for SFT from a labeled dataset, split train/validation by conversation.

    Length accounting needs `tokenizer` and `max_seq_len` (and the training `chat_template`, when it
    differs from the tokenizer's). `stats` reports samples, tokens and every over-length sample.
    """
    if overlength not in OVERLENGTH_POLICIES:
        raise SFTDataError(f"overlength must be one of {', '.join(OVERLENGTH_POLICIES)}, got {overlength!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise SFTDataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    prompt = resolve_system_prompt(system_prompt, fmt)
    if val_fraction > 0 and len(dataset) >= 2:
        train_ds, val_ds = dataset.split((1 - val_fraction, val_fraction), shuffle=shuffle, seed=seed)
        if len(val_ds) == 0:  # tiny sets: keep at least one validation conversation
            train_ds, val_ds = Dataset(train_ds.conversations[:-1]), Dataset(train_ds.conversations[-1:])
    else:
        train_ds, val_ds = dataset, Dataset([])
    stats: dict[str, Any] = {"format": fmt, "system_prompt": prompt, "max_seq_len": max_seq_len,
                             "overlength_policy": overlength, "n_overlength": 0, "n_kept_overlength": 0,
                             "n_trimmed": 0, "n_dropped": 0}
    parts = {}
    fold = False
    if tokenizer is not None and max_seq_len and chat_template is None:
        from igft.finetune.chat_template import accepts_system
        fold = not accepts_system(tokenizer)  # counted as the trainer renders it: system in the first user turn
    for name, part in (("train", train_ds), ("validation", val_ds)):
        samples = [s for conv in part for s in conversation_samples(conv, fmt, prompt)]
        if tokenizer is not None and max_seq_len:
            fitted = [_fit_length(s, tokenizer, max_seq_len, overlength, chat_template, stats, fold) for s in samples]
            samples = [s for s in fitted if s is not None]
        parts[name] = samples
        stats[f"n_{name}_conversations"] = len(part)
        stats[f"n_{name}_samples"] = len(samples)
        if samples and "n_tokens" in samples[0]:
            stats[f"n_{name}_tokens"] = sum(s["n_tokens"] for s in samples)
    stats["train_conversations"] = train_ds.numbers
    stats["validation_conversations"] = val_ds.numbers
    if stats["n_overlength"]:
        logger.warning("%d sample(s) longer than max_seq_len=%s: %d kept (truncated by the trainer), %d trimmed, "
                       "%d dropped", stats["n_overlength"], max_seq_len, stats["n_kept_overlength"],
                       stats["n_trimmed"], stats["n_dropped"])
    return SFTData(parts["train"], parts["validation"], stats)


def to_prompt_completion(sample: dict[str, Any]) -> dict[str, Any]:
    """TRL's conversational prompt/completion form: the loss then covers only the final assistant turn.

    With plain `messages` and assistant-only loss, the earlier assistant turns of the history would be
    trained on too (as plain replies, which in intent+response would teach the wrong format).
    """
    return {"prompt": sample["messages"][:-1], "completion": sample["messages"][-1:]}


def to_hf_dataset(samples: Sequence[dict[str, Any]], columns: Iterable[str] | None = None,
                  prompt_completion: bool = False) -> Any:
    """A `datasets.Dataset` of the samples (all columns, only `columns`, or prompt/completion pairs)."""
    import datasets
    rows = [to_prompt_completion(s) for s in samples] if prompt_completion else list(samples)
    if prompt_completion:
        columns = None
    keep = list(columns) if columns is not None else (list(rows[0].keys()) if rows else ["messages"])
    return datasets.Dataset.from_list([{k: r[k] for k in keep} for r in rows]) if rows \
        else datasets.Dataset.from_dict({k: [] for k in keep})


def write_jsonl(samples: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """One JSON sample per line (OpenAI / TRL chat format plus igft's metadata), written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps(s, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
