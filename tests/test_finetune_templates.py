"""Chat templates for training and generation across model families (tiny random models, no hub).

Llama 3, Qwen2.5 and Gemma tokenizers carry their real templates (TRL's bundled copies), so TRL's
training variants apply; Mistral v0.1's template has no TRL variant and rejects a system message, so
it trains with igft's ChatML template and two added, trainable tokens; a model without a template gets
the plain format. For each: the loss mask covers the final assistant turn only, its stop token included.
"""
from __future__ import annotations

import pytest

from igft.data import load_conversations
from igft.finetune.chat_template import (PLAIN_TEMPLATE, accepts_system, fold_system, install_training_template,
                                         render_prompt, resolve_training_template)
from igft.finetune.config import FinetuneConfig
from igft.finetune.sft_data import build_sft_data
from igft.resources import toy_conversations_path
from tests.tiny_models import tiny_model

FAMILIES = {  # family -> (template source, stop token, accepts a system message)
    "llama": ("trl", "<|eot_id|>", True),
    "qwen2": ("trl", "<|im_end|>", True),
    "gemma": ("trl", "<end_of_turn>", False),
    "mistral": ("chatml", "<|im_end|>", True),  # after the switch to ChatML the system role is fine
}


def _tokenizer(path):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(path)


def _trainer_for(path, tmp_path):
    """An SFTTrainer over the first toy conversations, built the way igft.finetune.train builds it."""
    from igft.finetune.model_loading import apply_lora, load_causal_lm, make_lora_config
    from igft.finetune.chat_template import output_modules_to_save, trainable_token_indices
    from igft.finetune.train import make_trainer

    model, tok = load_causal_lm(str(path), quantize="none")
    plan = install_training_template(tok)
    if plan.added_tokens:
        model.resize_token_embeddings(len(tok))
    data = build_sft_data(load_conversations(toy_conversations_path()).head(2), "intent+response", tokenizer=tok,
                          max_seq_len=512, val_fraction=0.0)
    lora = make_lora_config(4, 8, 0.0, target_modules="q_proj,v_proj",
                            modules_to_save=output_modules_to_save(model, plan.added_tokens),
                            trainable_token_indices=trainable_token_indices(model, tok, plan.added_tokens))
    cfg = FinetuneConfig(max_steps=1, per_device_train_batch_size=1, eval_steps=0, save_steps=100, max_seq_len=512,
                         warmup_ratio=0.0)
    trainer = make_trainer(apply_lora(model, lora), tok, data.train[:2], [], cfg, tmp_path / "ck")
    return trainer, tok, plan, data.train[:2]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_loss_mask_is_the_final_assistant_turn_and_its_stop_token(family, tmp_path):
    source, stop, system_ok = FAMILIES[family]
    trainer, tok, plan, samples = _trainer_for(tiny_model(family), tmp_path)
    assert plan.source == source
    assert accepts_system(tok) is system_ok
    for row, sample in zip(trainer.train_dataset, samples):
        batch = trainer.data_collator([row])
        ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
        trained = [t for t, lab in zip(ids, labels) if lab != -100]
        target = sample["messages"][-1]["content"]
        # TRL's collator shifts nothing: labels are the trained tokens themselves
        text = tok.decode(trained)
        assert text.strip().endswith(stop), text[-40:]
        assert text.replace(stop, "").strip() == target.strip()
        # the earlier assistant turns of the history are not trained on
        first = next(i for i, lab in enumerate(labels) if lab != -100)
        assert all(lab != -100 for lab in labels[first:first + len(trained)])
        assert tok.convert_tokens_to_ids(stop) in trained


def test_chatml_tokens_added_for_mistral_are_trainable(tmp_path):
    import torch

    trainer, tok, plan, _ = _trainer_for(tiny_model("mistral"), tmp_path)
    assert plan.added_tokens == ["<|im_start|>", "<|im_end|>"]
    stop_id = tok.convert_tokens_to_ids("<|im_end|>")
    model = trainer.model
    assert model.peft_config["default"].trainable_token_indices["embed_tokens"] == [stop_id - 1, stop_id]
    assert model.peft_config["default"].modules_to_save == {"lm_head"} or "lm_head" in model.peft_config["default"].modules_to_save
    before = model.get_output_embeddings()(torch.ones(1, model.config.hidden_size))[0, stop_id].item()
    embed_before = model.get_input_embeddings()(torch.tensor([stop_id])).detach().clone()
    trainer.args.learning_rate = 5e-2
    trainer.train()
    after = model.get_output_embeddings()(torch.ones(1, model.config.hidden_size))[0, stop_id].item()
    embed_after = model.get_input_embeddings()(torch.tensor([stop_id])).detach()
    assert after != before  # the lm_head row of the stop token learned
    assert not torch.allclose(embed_before, embed_after)  # and so did its embedding row


def test_system_is_folded_where_the_template_rejects_it():
    tok = _tokenizer(tiny_model("gemma"))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert not accepts_system(tok)
    text = render_prompt(tok, messages)
    assert "Be brief.\n\nHi" in text and text.endswith("<start_of_turn>model\n")
    assert fold_system([{"role": "system", "content": "S"}, {"role": "assistant", "content": "A"}])[0] == \
        {"role": "user", "content": "S"}
    mistral = _tokenizer(tiny_model("mistral"))
    assert not accepts_system(mistral)  # Mistral v0.1's own template (the base-model baseline uses it)
    assert render_prompt(mistral, messages).endswith("[INST] Be brief.\n\nHi [/INST]")


def test_model_without_template_gets_the_plain_format():
    from igft.finetune.chat_template import prepare_inference_tokenizer

    tok = _tokenizer(tiny_model("llama", template=None))
    assert resolve_training_template(tok).source == "plain"
    assert prepare_inference_tokenizer(tok) == "plain" and tok.chat_template == PLAIN_TEMPLATE
    text = render_prompt(tok, [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}])
    assert text == "S\n\n### User:\nHi\n\n### Assistant:\n"


def test_base_model_generates_with_its_own_template(tmp_path):
    from igft.finetune.generate import load_for_generation

    path = tiny_model("llama")
    own = _tokenizer(path).chat_template
    _, tok, _ = load_for_generation(str(path))
    assert tok.chat_template == own  # never replaced by a training template


def test_training_run_saves_the_template_it_trained_with(tmp_path):
    import json

    from igft.finetune.train import train

    cfg = FinetuneConfig(model=str(tiny_model("gemma")), max_conversations=2, max_steps=1, per_device_train_batch_size=2,
                         max_seq_len=256, val_fraction=0.0, eval_steps=0, save_steps=100, output_dir=str(tmp_path / "run"))
    result = train(cfg)
    meta = json.loads((result.adapter_dir / "igft.json").read_text())
    assert meta["chat_template"] == "trl" and result.data_stats["chat_template"] == "trl"
    saved = _tokenizer(result.adapter_dir)
    assert "{% generation %}" in saved.chat_template.replace("{%-", "{%")
