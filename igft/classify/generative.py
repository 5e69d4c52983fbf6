"""Generative LLM classifier: a (Q)LoRA fine-tune that answers with JSON, the taxonomy in the system prompt.

Training target for a text: `{"category": "billing", "urgency": "high"}` after the chat-templated
system prompt (task + label sets) and user turn, loss on the answer tokens only.

Decoding can only produce a valid label for every field, so every output parses:
- "constrained" (default): greedy generation where, at each step, only tokens that continue the JSON
  skeleton or an allowed label are permitted (a token trie per field);
- "score": for each field in order, every allowed label is scored by its summed log-likelihood given
  the prompt and the fields chosen so far (batched), and the best is taken.
`predict_proba` is the softmax of the "score" log-likelihoods over each field's labels (one scored
sequence per label and text: cheap for small label sets, slow for 150 intents on a CPU).
`taxonomy_in_prompt=False` drops the label lists from the system prompt: the fine-tune learns the label
names and the trie still keeps every answer inside the label set (a 150-label list is ~1,500 tokens a row).
To make the trie exact, the answer's token ids are built piecewise (skeleton pieces and labels are
tokenized separately and concatenated) in training and decoding alike.

Training runs on TRL's SFTTrainer over pre-tokenized prompt/completion rows (`input_ids` plus a
`completion_mask`, TRL's processed form), so the loss covers the answer and its end-of-turn token
only, and the options of igft.classify.llm_training apply (batch_size, grad_accum, schedule, mixed
precision, validation loss + early stopping, checkpoints + resume, report_to). Prompts use the
model's own chat template (the system text folded into the user turn where the template rejects a
system role; igft's plain format for a model without a template).
`inference_backend="vllm"` decodes with one vLLM engine and vLLM's structured outputs (a choice
among the answers for one field, a JSON schema of enums for several) instead of the token trie.
"""
from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from igft.classify.base import Classifier, ClassifierError
from igft.classify.llm_training import (LLMTrainingOptions, checkpoint_folder, model_device, trainer_kwargs,
                                        training_stats, validate_options)
from igft.classify.prompting import parse_answer, system_prompt
from igft.classify.task import TaskSchema, json_answer

logger = logging.getLogger(__name__)
END = -1  # trie key marking a complete unit (label + the skeleton piece after it)


@dataclass
class GenerativeConfig(LLMTrainingOptions):
    max_text_tokens: int = field(default=256, metadata={"help": "input text is truncated to this many tokens"})
    decoding: str = field(default="constrained", metadata={"help": "constrained (token trie) or score (label likelihood)"})
    inference_backend: str = field(default="hf", metadata={"help": "hf (transformers) or vllm (one engine, structured outputs; GPU)"})
    gpu_memory_utilization: float = field(default=0.9, metadata={"help": "vllm: share of GPU memory for the engine"})
    max_model_len: int | None = field(default=None, metadata={"help": "vllm: context length of the engine"})
    taxonomy_in_prompt: bool = field(default=True, metadata={"help": "list every field's labels in the system prompt; "
                                     "False = a short prompt without them (the fine-tune learns the label names, "
                                     "decoding stays constrained to the label set): for large taxonomies on CPU"})


class GenerativeClassifier(Classifier):
    method = "generative"
    Config = GenerativeConfig

    def __init__(self, schema: TaskSchema, config: Any = None):
        super().__init__(schema, config)
        validate_options(self.config)
        if self.config.decoding not in ("constrained", "score"):
            raise ClassifierError(f"decoding must be constrained or score, got {self.config.decoding!r}")
        if self.config.inference_backend not in ("hf", "vllm"):
            raise ClassifierError(f"inference_backend must be hf or vllm, got {self.config.inference_backend!r}")
        self._vllm = None
        self.model = None
        self.tokenizer = None
        self.last_outputs: list[str] = []  # raw decoded answers of the last predict call (tests json.loads them)

    # ---- model and answer encoding ---------------------------------------------------------------
    def _load_base(self):
        from igft.finetune.chat_template import prepare_inference_tokenizer
        from igft.finetune.model_loading import load_causal_lm

        model, tokenizer = load_causal_lm(self.config.model, quantize=self.config.quantize, backend=self.config.backend)
        prepare_inference_tokenizer(tokenizer)  # own template; the plain format when the model has none
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
        from igft.finetune.chat_template import accepts_system, end_of_turn_token
        # the answer ends with the template's own end of turn (<|im_end|>, <|eot_id|>, <end_of_turn>, eos)
        self._eos = tok.convert_tokens_to_ids(end_of_turn_token(tok))
        self._system_ok = accepts_system(tok)
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
        self._system = system_prompt(self.schema, with_labels=self.config.taxonomy_in_prompt)

    def _prompt_ids(self, text: str) -> list[int]:
        tok = self.tokenizer
        ids = tok(text, add_special_tokens=False)["input_ids"][: self.config.max_text_tokens]
        text = tok.decode(ids)
        from igft.finetune.chat_template import render_prompt

        messages = [{"role": "system", "content": self._system}, {"role": "user", "content": text}]
        return tok(render_prompt(tok, messages, self._system_ok), add_special_tokens=False)["input_ids"]

    def _answer_ids(self, target: dict[str, str]) -> list[int]:
        ids = list(self._prefix)
        for i, spec in enumerate(self.schema.fields):
            ids += self._units[i][target[spec.name]]
        return ids + [self._eos]

    # ---- training ---------------------------------------------------------------------------------
    def _rows(self, texts: Sequence[str], targets: Sequence[dict[str, str]]) -> Any:
        """TRL's processed prompt/completion form: input_ids and a completion_mask over the answer tokens."""
        import datasets

        rows = []
        for text, target in zip(texts, targets):
            prompt, answer = self._prompt_ids(text), self._answer_ids(target)
            rows.append({"input_ids": prompt + answer, "completion_mask": [0] * len(prompt) + [1] * len(answer)})
        return datasets.Dataset.from_list(rows)

    def fit(self, texts, targets, val_texts=(), val_targets=()) -> dict:
        import torch
        from trl import SFTConfig, SFTTrainer
        from igft.finetune.model_loading import apply_lora, make_lora_config
        from igft.finetune.trainer_args import early_stopping

        cfg = self.config
        torch.manual_seed(cfg.seed)
        model, self.tokenizer = self._load_base()
        self._prepare_encoding()
        lora = make_lora_config(r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                                target_modules=cfg.target_modules, task_type="CAUSAL_LM")
        self.model = apply_lora(model, lora)
        known = [i for i, t in enumerate(val_targets)
                 if all(t[spec.name] in spec.labels for spec in self.schema.fields)]  # unseen labels: no answer ids
        val_rows = self._rows([val_texts[i] for i in known], [val_targets[i] for i in known]) if known else None
        with checkpoint_folder(cfg) as (folder, resume_from):
            args = SFTConfig(**trainer_kwargs(cfg, folder, has_eval=val_rows is not None),
                             completion_only_loss=True, max_length=None, packing=False)
            trainer = SFTTrainer(model=self.model, args=args, train_dataset=self._rows(texts, targets),
                                 eval_dataset=val_rows, processing_class=self.tokenizer,
                                 callbacks=early_stopping(args, cfg.early_stopping_patience))
            trainer.train(resume_from_checkpoint=resume_from)
            stats = training_stats(trainer, len(texts), resume_from)
        self.model = trainer.model
        self.model.eval()
        return stats

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
        device = model_device(self.model)
        ids, attention = ids.to(device), attention.to(device)
        width = ids.shape[1]
        longest = len(self._prefix) + sum(max(len(u) for u in units.values()) for units in self._units) + 1

        def allowed(batch_id: int, input_ids) -> list[int]:
            return self._walk(input_ids[width:].tolist())[0]

        from igft.finetune.model_loading import inference_autocast

        with torch.no_grad(), inference_autocast(self.model):
            out = self.model.generate(input_ids=ids, attention_mask=attention, max_new_tokens=longest, do_sample=False,
                                      prefix_allowed_tokens_fn=allowed, eos_token_id=self._eos,
                                      pad_token_id=self.tokenizer.pad_token_id)
        return [row[width:].tolist() for row in out.cpu()]

    def _label_scores(self, prompts: list[list[int]]) -> tuple[list[list[int]], list]:
        """Per field, in order: a (rows, labels) tensor of each label's summed answer-token log-likelihood given
        the prompt and the best labels of the earlier fields; and the answers built from those best labels."""
        import torch
        from igft.finetune.model_loading import inference_autocast

        contexts = [p + list(self._prefix) for p in prompts]
        answers = [list(self._prefix) for _ in prompts]
        per_field = []
        device = model_device(self.model)
        for i in range(len(self.schema.fields)):
            units = list(self._units[i].values())
            pairs = [(row, u) for row in range(len(prompts)) for u in range(len(units))]
            scores = torch.full((len(prompts), len(units)), -math.inf)
            chunk = max(1, self.config.eval_batch_size)
            for start in range(0, len(pairs), chunk):
                part = pairs[start:start + chunk]
                input_ids, attention, labels = self._collate([(contexts[row], units[u]) for row, u in part])
                with torch.no_grad(), inference_autocast(self.model):
                    logits = self.model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits.cpu()
                logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
                target = labels[:, 1:]
                mask = target != -100
                picked = logprobs.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
                for (row, u), value in zip(part, (picked * mask).sum(-1).tolist()):
                    scores[row, u] = value
            per_field.append(scores)
            for row, u in enumerate(scores.argmax(-1).tolist()):
                contexts[row] += units[u]
                answers[row] += units[u]
        return [a + [self._eos] for a in answers], per_field

    def _decode_scored(self, prompts: list[list[int]]) -> list[list[int]]:
        return self._label_scores(prompts)[0]

    def predict_proba(self, texts: Sequence[str]) -> dict:
        """Per field, the softmax over the labels' summed answer-token log-likelihoods (the "score" decoding's
        scores, normalised over the label set; later fields conditioned on the best earlier labels).
        Costs one scored sequence per label and text, so it suits small label sets or short prompts."""
        if self.model is None:
            raise ClassifierError("the generative classifier is not trained; call fit or load a saved model")
        parts: list[list] = [[] for _ in self.schema.fields]
        size = max(1, self.config.eval_batch_size)
        for start in range(0, len(texts), size):
            _, per_field = self._label_scores([self._prompt_ids(t) for t in texts[start:start + size]])
            for j, scores in enumerate(per_field):
                parts[j].append(scores.softmax(-1).numpy())
        import numpy as np

        return {spec.name: (np.concatenate(parts[j]) if parts[j] else np.zeros((0, len(spec.labels))))
                for j, spec in enumerate(self.schema.fields)}

    # ---- vLLM structured outputs -----------------------------------------------------------------
    def structured_request(self) -> dict[str, Any]:
        """vLLM StructuredOutputsParams keywords: a choice among the full answers for one field, else a
        JSON schema whose properties are enums of the allowed labels."""
        names = self.schema.field_names
        if len(self.schema.fields) == 1:
            spec = self.schema.fields[0]
            return {"choice": [json_answer({spec.name: label}, names) for label in spec.labels]}
        schema = {"type": "object", "additionalProperties": False, "required": list(names),
                  "properties": {spec.name: {"type": "string", "enum": list(spec.labels)} for spec in self.schema.fields}}
        return {"json": schema}

    def _predict_vllm(self, texts: Sequence[str]) -> list[dict[str, str]]:
        from igft.finetune.generate import GenerationSettings, VLLMGenerator
        from igft.llm.local_models import resolve_model_path

        if self._vllm is None:  # one engine for every predict call of this classifier
            adapter_dir = Path(tempfile.mkdtemp(prefix="igft-generative-adapter-"))
            self.model.save_pretrained(adapter_dir)
            settings = GenerationSettings(max_new_tokens=self._longest_answer(), temperature=0.0, seed=self.config.seed,
                                          gpu_memory_utilization=self.config.gpu_memory_utilization,
                                          max_model_len=self.config.max_model_len)
            self._vllm = VLLMGenerator(resolve_model_path(self.config.model), settings, adapter_dir)
        tok = self.tokenizer
        prompts = [tok.decode(self._prompt_ids(t)) for t in texts]
        outputs = self._vllm.generate(prompts, stop=[tok.convert_ids_to_tokens(self._eos)],
                                      structured=self.structured_request())
        self.last_outputs = list(outputs)
        results = []
        for text in outputs:
            labels, _ = parse_answer(text, self.schema)
            results.append({name: labels[name] if labels[name] is not None else spec.labels[0]
                            for name, spec in zip(self.schema.field_names, self.schema.fields)})
        return results

    def _longest_answer(self) -> int:
        return len(self._prefix) + sum(max(len(u) for u in units.values()) for units in self._units) + 1

    def predict(self, texts):
        if self.model is None:
            raise ClassifierError("the generative classifier is not trained; call fit or load a saved model")
        if self.config.inference_backend == "vllm":
            return self._predict_vllm(list(texts))
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
