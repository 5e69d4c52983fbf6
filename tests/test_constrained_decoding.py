"""Constrained decoding of the Intents: block: every output parses, names come from the catalog only."""
from __future__ import annotations

import pytest

from igft.finetune.constrained import CLOSER, HEADER, REPLY, IntentBlockProcessor
from igft.finetune.parsing import parse_output

CATALOG = ["ask_order_number", "apologize", "goodbye", "Request late check-out"]


@pytest.fixture(scope="module")
def tokenizer():
    pytest.importorskip("transformers")
    from igft.finetune.model_loading import load_tokenizer

    try:
        return load_tokenizer("smollm2")
    except Exception as exc:  # the bundled model is not installed here
        pytest.skip(f"bundled SmolLM2 tokenizer unavailable: {exc}")


def _ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_grammar_forces_header_then_catalog_lines_then_closer(tokenizer):
    proc = IntentBlockProcessor(tokenizer, CATALOG, prompt_length=0, max_intents=2)
    header = _ids(tokenizer, HEADER)
    assert proc.allowed([]) == [header[0]]
    at_line_start = set(proc.allowed(header))
    closer_first = _ids(tokenizer, CLOSER)[0]
    assert closer_first not in at_line_start, "Responses: may not come before the first intent"
    one = header + _ids(tokenizer, "- goodbye\n")
    assert closer_first in set(proc.allowed(one))
    two = one + _ids(tokenizer, "- apologize\n")
    assert set(proc.allowed(two)) == {closer_first}, "max_intents reached: only the closer is left"
    done = two + _ids(tokenizer, CLOSER)
    assert proc.allowed(done) != REPLY  # first reply token: not end-of-sequence
    assert proc.allowed(done + _ids(tokenizer, "Sure")) == REPLY


def test_random_model_under_the_grammar_always_gives_well_formed_outputs(tokenizer):
    torch = pytest.importorskip("torch")
    from transformers import LlamaConfig, LlamaForCausalLM

    from igft.finetune.generate import GenerationSettings, generate_texts

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                         max_position_embeddings=512)).eval()
    prompts = [[{"role": "user", "content": text}] for text in ("Hi, where is my order?", "Thanks, bye", "Refund?")]
    texts = generate_texts(model, tokenizer, prompts, GenerationSettings(max_new_tokens=30, batch_size=2), progress=False,
                           logits_processor=[IntentBlockProcessor(tokenizer, CATALOG)])
    allowed = {name.lower().replace(" ", "_").replace("-", "_") for name in CATALOG}
    for text in texts:
        parsed = parse_output(text, "intent+response")
        assert not parsed.malformed, (text, parsed.reasons)
        assert parsed.intents and set(parsed.intents) <= allowed, text
        assert "\n" not in parsed.reply
