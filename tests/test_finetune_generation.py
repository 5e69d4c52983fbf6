"""HF generation: left-padded batches give the same greedy tokens as one prompt at a time, tokens/s is
reported, and callers can constrain decoding (logits_processor / prefix_allowed_tokens_fn)."""
from __future__ import annotations

import torch

from igft.finetune.generate import GenerationSettings, generate_texts
from tests.tiny_models import tiny_model

PROMPTS = [[{"role": "system", "content": "S"}, {"role": "user", "content": text}]
           for text in ("Where is my order?", "Hi", "I want a refund for the broken lamp please")]


def _loaded():
    from igft.finetune.generate import load_for_generation
    model, tok, _ = load_for_generation(str(tiny_model("llama")))
    return model, tok


def test_batched_left_padding_matches_single_prompts_and_reports_speed():
    model, tok = _loaded()
    settings = GenerationSettings(max_new_tokens=6, batch_size=3)
    stats = {}
    batched = generate_texts(model, tok, PROMPTS, settings, progress=False, stats=stats)
    alone = [generate_texts(model, tok, [p], GenerationSettings(max_new_tokens=6, batch_size=1), progress=False)[0]
             for p in PROMPTS]
    assert batched == alone
    assert 0 < stats["new_tokens"] <= 18 and stats["tokens_per_s"] > 0


def test_decoding_can_be_constrained():
    from transformers import LogitsProcessor

    model, tok = _loaded()
    target = tok.convert_tokens_to_ids(tok.tokenize(" order")[0])

    class Only(LogitsProcessor):
        def __call__(self, input_ids, scores):
            forced = torch.full_like(scores, -float("inf"))
            forced[:, target] = 0.0
            return forced

    settings = GenerationSettings(max_new_tokens=3, batch_size=2)
    by_processor = generate_texts(model, tok, PROMPTS[:2], settings, progress=False, logits_processor=[Only()])
    by_prefix = generate_texts(model, tok, PROMPTS[:2], settings, progress=False,
                               prefix_allowed_tokens_fn=lambda batch_id, ids: [target])
    expected = tok.decode([target] * 3)
    assert by_processor == by_prefix == [expected, expected]
