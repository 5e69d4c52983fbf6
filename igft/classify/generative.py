"""Generative LLM classifier: a (Q)LoRA fine-tune that answers with JSON, the taxonomy in the system prompt.

Training target for a text: `{"category": "billing", "urgency": "high"}` after the chat-templated
system prompt (task + label sets) and user turn, loss on the answer tokens only.

Decoding can only produce a valid label for every field, so every output parses:
- "constrained" (default): greedy generation where, at each step, only tokens that continue the JSON
  skeleton or an allowed label are permitted (a token trie per field);
- "score": for each field in order, every allowed label is scored by its summed log-likelihood given
  the prompt and the fields chosen so far (batched), and the best is taken.
To make the trie exact, the answer's token ids are built piecewise (skeleton pieces and labels are
tokenized separately and concatenated) in training and decoding alike.
"""
from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tqdm.auto import tqdm

from igft.classify.base import Classifier, ClassifierError
from igft.classify.prompting import system_prompt
from igft.classify.task import TaskSchema

logger = logging.getLogger(__name__)
END = -1  # trie key marking a complete unit (label + the skeleton piece after it)


@dataclass
class GenerativeConfig:
    model: str = field(default="smollm2", metadata={"help": "base model: smollm2, a local folder or an HF id"})
    quantize: str = field(default="auto", metadata={"help": "auto (QLoRA on CUDA+bitsandbytes), 4bit, none"})
    lora_r: int = field(default=64, metadata={"help": "LoRA rank (the recipe's 64)"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (the recipe's 16)"})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout (the recipe's 0.1)"})
    target_modules: str | None = field(default=None, metadata={"help": "comma list or all-linear; None = attention+MLP"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the training rows (ignored when max_steps > 0)"})
    max_steps: int = field(default=0, metadata={"help": "optimizer steps; 0 = derive from epochs"})
    batch_size: int = field(default=8, metadata={"help": "training batch size"})
    learning_rate: float = field(default=2e-4, metadata={"help": "AdamW learning rate"})
    max_text_tokens: int = field(default=256, metadata={"help": "input text is truncated to this many tokens"})
    decoding: str = field(default="constrained", metadata={"help": "constrained (token trie) or score (label likelihood)"})
    eval_batch_size: int = field(default=16, metadata={"help": "texts per decoding batch"})
    seed: int = field(default=0, metadata={"help": "seed for LoRA init, dropout and batch order"})


class GenerativeClassifier(Classifier):
    method = "generative"
    Config = GenerativeConfig

    def __init__(self, schema: TaskSchema, config: Any = None):
        super().__init__(schema, config)
        if self.config.decoding not in ("constrained", "score"):
            raise ClassifierError(f"decoding must be constrained or score, got {self.config.decoding!r}")
        self.model = None
        self.tokenizer = None
        self.last_outputs: list[str] = []  # raw decoded answers of the last predict call (tests json.loads them)

    # ---- model and answer encoding ---------------------------------------------------------------
    def _load_base(self):
        from igft.finetune.model_loading import load_causal_lm

        model, tokenizer = load_causal_lm(self.config.model, quantize=self.config.quantize)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return model, tokenizer

    def _prepare_encoding(self) -> None:
        """Token pieces of the answer skeleton and of every label, and one trie per field."""
        tok = self.tokenizer
        enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
        names = self.schema.field_names
        self._prefix = enc('{"' + names[0] + '": "')
        self._after = [enc('", "' + names[i + 1] + '": "') for i in range(len(names) - 1)] + [enc('"}')]
        self._eos = tok.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tok.get_vocab() else tok.eos_token_id
        self._units: list[dict[str, list[int]]] = []
        self._tries: list[dict] = []
        for i, spec in enumerate(self.schema.fields):
            units = {label: enc(label) + self._after[i] for label in spec.labels}
            trie: dict = {}
            for label, ids in units.items():
                node = trie
                for t in ids:
                    if END in node:
                        raise ClassifierError(f"label {node[END]!r} of field {spec.name!r} is a token prefix of {label!r}; rename one")
                    node = node.setdefault(t, {})
                if node:
                    raise ClassifierError(f"label {label!r} of field {spec.name!r} is a token prefix of another label; rename one")
                node[END] = label
            self._units.append(units)
            self._tries.append(trie)
        self._system = system_prompt(self.schema)

    def _prompt_ids(self, text: str) -> list[int]:
        tok = self.tokenizer
        ids = tok(text, add_special_tokens=False)["input_ids"][: self.config.max_text_tokens]
        text = tok.decode(ids)
        messages = [{"role": "system", "content": self._system}, {"role": "user", "content": text}]
        rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return tok(rendered, add_special_tokens=False)["input_ids"]

    def _answer_ids(self, target: dict[str, str]) -> list[int]:
        ids = list(self._prefix)
        for i, spec in enumerate(self.schema.fields):
            ids += self._units[i][target[spec.name]]
        return ids + [self._eos]

    # ---- training ---------------------------------------------------------------------------------
    def fit(self, texts, targets, val_texts=(), val_targets=()) -> dict:
        import torch
        from peft import get_peft_model
        from igft.finetune.model_loading import make_lora_config

        cfg = self.config
        torch.manual_seed(cfg.seed)
        model, self.tokenizer = self._load_base()
        self._prepare_encoding()
        lora = make_lora_config(r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                                target_modules=cfg.target_modules, task_type="CAUSAL_LM")
        self.model = get_peft_model(model, lora)
        examples = [(self._prompt_ids(t), self._answer_ids(y)) for t, y in zip(texts, targets)]
        steps_per_epoch = math.ceil(len(examples) / cfg.batch_size)
        total = cfg.max_steps if cfg.max_steps > 0 else max(1, math.ceil(cfg.epochs * steps_per_epoch))
        optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=cfg.learning_rate)
        rng = random.Random(cfg.seed)
        order: list[int] = []
        losses = []
        self.model.train()
        for _ in tqdm(range(total), desc="generative classifier", leave=False):
            if len(order) < cfg.batch_size:
                fresh = list(range(len(examples)))
                rng.shuffle(fresh)
                order += fresh
            batch = [examples[i] for i in order[: cfg.batch_size]]
            del order[: cfg.batch_size]
            input_ids, attention, labels = self._collate(batch)
            loss = self.model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
        self.model.eval()
        return {"steps": total, "first_loss": losses[0], "last_loss": losses[-1], "n_train": len(examples)}

    def _collate(self, batch: Sequence[tuple[list[int], list[int]]]):
        import torch

        width = max(len(p) + len(a) for p, a in batch)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        for row, (prompt, answer) in enumerate(batch):
            seq = prompt + answer
            ids[row, : len(seq)] = torch.tensor(seq)
            attention[row, : len(seq)] = 1
            labels[row, len(prompt): len(seq)] = torch.tensor(answer)  # loss on the answer only
        return ids, attention, labels

    # ---- decoding ---------------------------------------------------------------------------------
    def _walk(self, generated: Sequence[int]) -> tuple[list[int], dict[str, str]]:
        """Allowed next tokens after `generated`, and the labels completed so far."""
        n_prefix = len(self._prefix)
        if len(generated) < n_prefix:
            return [self._prefix[len(generated)]], {}
        pos, labels = n_prefix, {}
        for i, spec in enumerate(self.schema.fields):
            node = self._tries[i]
            while END not in node:
                if pos >= len(generated):
                    return list(node), labels
                node = node.get(int(generated[pos]))
                pos += 1
                if node is None:  # cannot happen under the constraint; keep decoding safe anyway
                    return [self._eos], labels
            labels[spec.name] = node[END]
        return [self._eos], labels

    def _left_pad(self, prompts: Sequence[list[int]]):
        import torch

        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, p in enumerate(prompts):
            ids[row, width - len(p):] = torch.tensor(p)
            attention[row, width - len(p):] = 1
        return ids, attention

    def _decode_constrained(self, prompts: list[list[int]]) -> list[list[int]]:
        import torch

        ids, attention = self._left_pad(prompts)
        width = ids.shape[1]
        longest = len(self._prefix) + sum(max(len(u) for u in units.values()) for units in self._units) + 1

        def allowed(batch_id: int, input_ids) -> list[int]:
            return self._walk(input_ids[width:].tolist())[0]

        with torch.no_grad():
            out = self.model.generate(input_ids=ids, attention_mask=attention, max_new_tokens=longest, do_sample=False,
                                      prefix_allowed_tokens_fn=allowed, eos_token_id=self._eos,
                                      pad_token_id=self.tokenizer.pad_token_id)
        return [row[width:].tolist() for row in out]

    def _decode_scored(self, prompts: list[list[int]]) -> list[list[int]]:
        import torch

        contexts = [p + list(self._prefix) for p in prompts]
        answers = [list(self._prefix) for _ in prompts]
        for i in range(len(self.schema.fields)):
            units = list(self._units[i].values())
            pairs = [(row, u) for row in range(len(prompts)) for u in range(len(units))]
            scores = torch.full((len(prompts), len(units)), -math.inf)
            chunk = max(1, self.config.eval_batch_size)
            for start in range(0, len(pairs), chunk):
                part = pairs[start:start + chunk]
                batch = [(contexts[row], units[u]) for row, u in part]
                input_ids, attention, labels = self._collate(batch)
                with torch.no_grad():
                    logits = self.model(input_ids=input_ids, attention_mask=attention).logits
                logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
                target = labels[:, 1:]
                mask = target != -100
                picked = logprobs.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
                total = (picked * mask).sum(-1)
                for (row, u), value in zip(part, total.tolist()):
                    scores[row, u] = value
            best = scores.argmax(-1).tolist()
            for row, u in enumerate(best):
                contexts[row] += units[u]
                answers[row] += units[u]
        return [a + [self._eos] for a in answers]

    def predict(self, texts):
        if self.model is None:
            raise ClassifierError("the generative classifier is not trained; call fit or load a saved model")
        results, raw = [], []
        size = max(1, self.config.eval_batch_size)
        decode = self._decode_constrained if self.config.decoding == "constrained" else self._decode_scored
        for start in range(0, len(texts), size):
            prompts = [self._prompt_ids(t) for t in texts[start:start + size]]
            for generated in decode(prompts):
                _, labels = self._walk(generated)
                if len(labels) != len(self.schema.fields):
                    raise ClassifierError("constrained decoding stopped early; raise max_new_tokens (a bug if it happens)")
                results.append(labels)
                cut = generated.index(self._eos) if self._eos in generated else len(generated)
                raw.append(self.tokenizer.decode(generated[:cut]))
        self.last_outputs = raw
        return results

    # ---- persistence ------------------------------------------------------------------------------
    def save_files(self, out_dir: Path) -> None:
        self.model.save_pretrained(out_dir / "adapter")
        self.tokenizer.save_pretrained(out_dir / "adapter")

    @classmethod
    def load_files(cls, in_dir: Path, schema: TaskSchema, config: Any) -> "GenerativeClassifier":
        from peft import PeftModel

        clf = cls(schema, config)
        model, clf.tokenizer = clf._load_base()
        clf.model = PeftModel.from_pretrained(model, str(in_dir / "adapter"))
        clf.model.eval()
        clf._prepare_encoding()
        return clf
