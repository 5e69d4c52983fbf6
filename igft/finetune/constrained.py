"""Constrained decoding of the `Intents:` block over a fixed intent catalog (HF transformers).

An intent+response output is `Intents:\\n- a\\n- b\\nResponses:\\n<reply>`. A small model drifts from
that format (and invents names), so the intents block can be decoded under a grammar instead:

    "Intents:\\n"  then 1..max_intents lines "- <catalog name>\\n" (no name twice)  then "Responses:\\n"

and the reply after it is free text on one line (no newline token), ended by end-of-sequence or the
token limit: a small model that does not stop otherwise opens another `Intents:` block on a new line,
which the parser rightly counts as malformed. The grammar is a token trie over the allowed lines, each line
tokenized on its own; byte-level BPE tokenizers (SmolLM2, Llama, Qwen) split at the newline and at the
"- " bullet, so these are the tokenizations the model saw in training. Which names the model picks,
and the reply, are still the model's choice: the grammar fixes the format, not the answer.

`IntentBlockProcessor` is a transformers `LogitsProcessor`: pass `[IntentBlockProcessor(tokenizer,
catalog)]` as `logits_processor` to igft.finetune.generate's `generate_texts` / `generate_predictions`
(hf backend). It finds where each batch's prompt ends by itself, so one instance serves every batch.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

logger = logging.getLogger(__name__)

HEADER = "Intents:\n"
NOT_EOS = "not-eos"  # `allowed` result: the reply's first token: no end-of-sequence, no newline
REPLY = "reply"      # `allowed` result: any token without a newline
CLOSER = "Responses:\n"


@dataclass
class _TrieNode:
    children: dict[int, "_TrieNode"] = field(default_factory=dict)
    line: str | None = None  # the full line that ends here ("- name\n" or CLOSER)


_NEWLINES_CACHE: dict[int, list[int]] = {}


def _newline_tokens(tokenizer: Any) -> list[int]:
    """Ids of every token whose text holds a line break (decoded once per tokenizer, about a second)."""
    key = id(tokenizer)
    if key not in _NEWLINES_CACHE:
        vocabulary = len(tokenizer)
        texts = tokenizer.batch_decode([[i] for i in range(vocabulary)])
        _NEWLINES_CACHE[key] = [i for i, text in enumerate(texts) if "\n" in text or "\r" in text]
    return _NEWLINES_CACHE[key]


def _build_trie(lines: Sequence[tuple[str, list[int]]]) -> _TrieNode:
    root = _TrieNode()
    for text, ids in lines:
        node = root
        for token in ids:
            node = node.children.setdefault(token, _TrieNode())
        node.line = text
    return root


class IntentBlockProcessor:
    """Masks every token that would leave the grammar of the intents block; free after `Responses:`.

    The first call of a batch sees only the (left-padded) prompts: their length marks where the
    generated tokens start. A call whose leading tokens differ from the remembered prompts is a new
    batch. `prompt_length` fixes it instead (for callers that run one batch).
    """

    def __init__(self, tokenizer: Any, catalog: Sequence[str], prompt_length: int | None = None, max_intents: int = 4):
        if not catalog:
            raise ValueError("constrained decoding needs a non-empty intent catalog")
        encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
        self.header = encode(HEADER)
        names = sorted({str(name).strip() for name in catalog if str(name).strip()})
        self.items = _build_trie([(f"- {name}\n", encode(f"- {name}\n")) for name in names]
                                 + [(CLOSER, encode(CLOSER))])
        self.prompt_length = prompt_length
        self._fixed_length = prompt_length is not None
        self._prompts = None  # the current batch's prompt tokens
        self.max_intents = max_intents
        self.eos = tokenizer.eos_token_id
        self.newline_tokens = _newline_tokens(tokenizer)

    def allowed(self, generated: Sequence[int]) -> list[int] | str | None:
        """Token ids allowed next after `generated`, or REPLY / NOT_EOS inside the reply (None: a row that left
        the grammar, e.g. padding after its end; its scores are not touched)."""
        n = len(self.header)
        if len(generated) < n:
            return [self.header[len(generated)]]
        position, node, chosen = n, self.items, []
        while position < len(generated):
            node = node.children.get(int(generated[position]))
            position += 1
            if node is None:  # cannot happen under the mask; be permissive rather than crash
                return None
            if node.line is not None:
                if node.line == CLOSER:
                    # the reply: free text, except that its first token may not end it
                    return REPLY if position < len(generated) else NOT_EOS
                chosen.append(node.line)
                node = self.items
        options = []
        for token, child in node.children.items():
            if node is self.items and not self._can_start(child, chosen):
                continue
            options.append(token)
        return options

    def _can_start(self, child: _TrieNode, chosen: list[str]) -> bool:
        """At a line start: the closer needs one intent first; an intent needs room and no repeat."""
        lines = self._lines_under(child)
        if CLOSER in lines and chosen:
            return True
        if len(chosen) >= self.max_intents:
            return False
        return any(line != CLOSER and line not in chosen for line in lines)

    def _lines_under(self, node: _TrieNode) -> set[str]:
        cache = getattr(self, "_under", None)
        if cache is None:
            cache = self._under = {}
        key = id(node)
        if key not in cache:
            found = {node.line} if node.line is not None else set()
            for child in node.children.values():
                found |= self._lines_under(child)
            cache[key] = found
        return cache[key]

    def _track_batch(self, input_ids: Any) -> None:
        import torch

        if self._fixed_length:
            return
        known = self._prompts
        if (known is None or known.shape[0] != input_ids.shape[0] or input_ids.shape[1] < known.shape[1]
                or not torch.equal(input_ids[:, :known.shape[1]], known)):
            self._prompts = input_ids.clone()
            self.prompt_length = input_ids.shape[1]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        self._track_batch(input_ids)
        for row in range(input_ids.shape[0]):
            allowed = self.allowed(input_ids[row, self.prompt_length:].tolist())
            if allowed is None:
                continue
            if allowed in (REPLY, NOT_EOS):
                scores[row, self.newline_tokens] = -float("inf")
                if allowed == NOT_EOS and self.eos is not None:
                    scores[row, self.eos] = -float("inf")
                continue
            # a finished row (padding after EOS) has no legal continuation: leave its scores alone
            if not allowed:
                continue
            mask = torch.full_like(scores[row], -float("inf"))
            mask[allowed] = 0.0
            scores[row] = scores[row] + mask
        return scores
