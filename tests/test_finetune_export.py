"""`igft export --adapter DIR --merge --out DIR`: the merged model loads with transformers and decodes
the same greedy tokens as the adapter on top of its base; bad input gets one line."""
from __future__ import annotations

import json

import pytest
import torch

from igft.cli import main
from tests.tiny_models import tiny_model


@pytest.fixture(scope="module")
def trained_adapter(tmp_path_factory):
    """A LoRA adapter with non-zero weights on a tiny Mistral (ChatML tokens added, lm_head trained)."""
    from igft.finetune.config import FinetuneConfig
    from igft.finetune.train import train

    out = tmp_path_factory.mktemp("ft")
    cfg = FinetuneConfig(model=str(tiny_model("mistral")), max_conversations=2, max_steps=2, per_device_train_batch_size=2,
                         learning_rate=5e-2, warmup_ratio=0.0, lora_r=4, lora_alpha=16, lora_dropout=0.0, max_seq_len=256,
                         val_fraction=0.0, eval_steps=0, save_steps=100, output_dir=str(out / "run"))
    return train(cfg).adapter_dir


def _greedy(model, tok, text, n=12):
    ids = tok(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id,
                             eos_token_id=None, min_new_tokens=n)
    return out[0, ids["input_ids"].shape[1]:].tolist()


def test_merged_export_matches_adapter_on_base(trained_adapter, tmp_path, capsys):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "merged"
    assert main(["export", "--adapter", str(trained_adapter), "--merge", "--out", str(out)]) == 0
    assert "merged model:" in capsys.readouterr().out
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    assert "<|im_end|>" in tok.get_vocab() and json.loads((out / "igft_export.json").read_text())["chat_template"] == "chatml"

    base = AutoModelForCausalLM.from_pretrained(tiny_model("mistral"))
    base.resize_token_embeddings(len(tok))
    on_base = PeftModel.from_pretrained(base, str(trained_adapter)).eval()
    prompt = tok.apply_chat_template([{"role": "user", "content": "Where is my order?"}], tokenize=False,
                                     add_generation_prompt=True)
    merged_tokens = _greedy(merged, tok, prompt)
    assert merged_tokens == _greedy(on_base, tok, prompt)
    plain = AutoModelForCausalLM.from_pretrained(tiny_model("mistral"))
    plain.resize_token_embeddings(len(tok))
    # the adapter changed something: merged logits differ from the untouched base
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        assert not torch.allclose(merged(**ids).logits, plain(**ids).logits, atol=1e-4)


def test_export_bad_input_is_one_line(trained_adapter, tmp_path, capsys):
    empty = tmp_path / "not_an_adapter"
    empty.mkdir()
    assert main(["export", "--adapter", str(empty), "--merge", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no adapter_config.json" in err
    assert main(["export", "--adapter", str(trained_adapter), "--out", str(tmp_path / "m")]) == 2
    assert "--merge" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x.txt").write_text("keep me")
    assert main(["export", "--adapter", str(trained_adapter), "--merge", "--out", str(busy)]) == 2
    assert "not empty" in capsys.readouterr().err and (busy / "x.txt").read_text() == "keep me"
