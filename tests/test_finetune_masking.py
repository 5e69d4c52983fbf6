"""Assistant-only loss: labels are -100 exactly on the tokens outside the final assistant turn.

Checked token by token on the real SmolLM2 tokenizer with igft's ChatML training template, through
TRL's own SFTTrainer data preparation and collator (the model is a tiny random Llama with SmolLM2's
vocabulary, since the masking does not depend on the weights). The expected mask is computed
independently from character offsets in the rendered text.
"""
from __future__ import annotations

import pytest

from igft.data import Conversation, Dataset, Message
from igft.finetune.chat_template import CHATML_TRAINING_TEMPLATE, prepare_tokenizer
from igft.finetune.config import FinetuneConfig
from igft.finetune.sft_data import build_sft_data

pytestmark = pytest.mark.slow

ROWS = [("customer", "My card was charged twice.", "report_double_charge"),
        ("assistant", "I am sorry. Which order?", "ask_order_number"),
        ("customer", "Order 991.", "provide_order_number"),
        ("customer", "Please fix it.", "request_refund"),
        ("assistant", "Refund issued for order 991.", "issue_refund")]


@pytest.fixture(scope="module")
def trainer_and_samples(tmp_path_factory):
    import torch
    from peft import get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from igft.finetune.model_loading import load_tokenizer, make_lora_config
    from igft.finetune.train import make_trainer

    tok = load_tokenizer("smollm2")
    prepare_tokenizer(tok)
    assert tok.chat_template == CHATML_TRAINING_TEMPLATE
    torch.manual_seed(0)
    tiny = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512))
    ds = Dataset([Conversation(0, tuple(Message(0, i, r, t, it) for i, (r, t, it) in enumerate(ROWS)))])
    data = build_sft_data(ds, "intent+response", tokenizer=tok, max_seq_len=512, val_fraction=0)
    model = get_peft_model(tiny, make_lora_config(r=2, target_modules="q_proj,v_proj"))
    cfg = FinetuneConfig(max_steps=1, per_device_train_batch_size=2, max_seq_len=512,
                         output_dir=str(tmp_path_factory.mktemp("mask")))
    trainer = make_trainer(model, tok, data.train, [], cfg, tmp_path_factory.mktemp("ckpt"))
    return trainer, tok, data.train


def expected_label_mask(tok, messages) -> tuple[list[int], list[bool]]:
    """Token ids of the rendered sample and, per token, whether it lies inside the final assistant content + <|im_end|>."""
    text = tok.apply_chat_template(messages, tokenize=False, chat_template=CHATML_TRAINING_TEMPLATE)
    header = "<|im_start|>assistant\n"
    start = text.rindex(header) + len(header)
    end = start + len(messages[-1]["content"]) + len("<|im_end|>")
    assert text[start:end] == messages[-1]["content"] + "<|im_end|>" and text[end:] == "\n"
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    inside = [s >= start and e <= end for s, e in enc["offset_mapping"]]
    return enc["input_ids"], inside


def test_labels_are_minus_100_exactly_outside_the_final_assistant_turn(trainer_and_samples):
    trainer, tok, samples = trainer_and_samples
    assert len(samples) == 2 and len(trainer.train_dataset) == 2
    for sample, row in zip(samples, trainer.train_dataset):
        ids, inside = expected_label_mask(tok, sample["messages"])
        assert row["input_ids"] == ids
        labels = row["labels"]
        for pos, (tid, lab, ins) in enumerate(zip(ids, labels, inside)):
            assert lab == (tid if ins else -100), f"token {pos} {tok.decode([tid])!r}: label {lab}, inside={ins}"
        trained = tok.decode([t for t, lab in zip(ids, labels) if lab != -100])
        assert trained == sample["messages"][-1]["content"] + "<|im_end|>"
        assert trained.startswith("Intents:\n- ")
    # The second sample's history holds an earlier assistant turn: it must not be trained on.
    second_ids, _ = expected_label_mask(tok, samples[1]["messages"])
    history_reply = tok("I am sorry. Which order?", add_special_tokens=False)["input_ids"]
    row = trainer.train_dataset[1]
    first = next(i for i in range(len(second_ids)) if second_ids[i:i + len(history_reply)] == history_reply)
    assert all(lab == -100 for lab in row["labels"][first:first + len(history_reply)])


def test_collator_pads_with_minus_100_and_keeps_the_mask(trainer_and_samples):
    trainer, tok, samples = trainer_and_samples
    batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
    short = len(trainer.train_dataset[0]["input_ids"])
    assert batch["labels"].shape[1] == len(trainer.train_dataset[1]["input_ids"]) > short
    assert batch["labels"][0, short:].eq(-100).all()
    assert batch["labels"][0, :short].tolist() == trainer.train_dataset[0]["labels"]
    assert batch["attention_mask"][0, short:].eq(0).all()
