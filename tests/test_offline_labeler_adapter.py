"""The shipped igft-labeler adapter: its files, its package data, `local:igft-labeler`, and that it answers."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from igft.llm import build_lm, parse_spec
from igft.llm import local_models
from igft.llm.local_models import OfflineModelMissing, labeler_adapter_path

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "igft" / "models" / "igft_labeler"


def test_spec_names_the_shipped_labeler():
    parsed = parse_spec("local:igft-labeler")
    assert (parsed.backend, parsed.model_id, parsed.name) == ("local", "local:igft-labeler", "local:igft-labeler")
    assert parse_spec("local:smollm2").model_id == "local:smollm2"  # the plain bundled model is unchanged


def test_missing_adapter_is_one_clear_error(tmp_path, monkeypatch):
    (tmp_path / "adapter_config.json").write_text("{}")
    monkeypatch.setattr(local_models, "LABELER_DIR", tmp_path)
    with pytest.raises(OfflineModelMissing) as info:
        build_lm("local:igft-labeler")
    message = str(info.value)
    assert "adapter_model.safetensors" in message and "adapter_config.json" not in message.split(" missing")[0]
    assert "\n" not in message and "--ship" in message


def test_replay_needs_no_adapter(tmp_path, monkeypatch):
    monkeypatch.setattr(local_models, "LABELER_DIR", tmp_path / "nothing")
    lm = build_lm("local:igft-labeler", mode="replay", cassette=tmp_path / "c.jsonl")
    assert lm.model == "local:igft-labeler" and lm.inner._inner is None


def test_shipped_files_are_small_fp16_and_documented():
    from safetensors import safe_open

    folder = labeler_adapter_path()
    assert folder == SHIPPED
    assert not (folder / "tokenizer_config.json").exists()  # the bundled base model's tokenizer is used
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < 12 * 1024 * 1024  # r 16 on every projection of the 30 layers, fp16: about 9.8 MB
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "smollm2" and config["r"] <= 16
    with safe_open(str(folder / "adapter_model.safetensors"), "pt") as f:
        assert {str(f.get_slice(k).get_dtype()) for k in f.keys()} == {"F16"}
    readme = (folder / "README.md").read_text()
    for needed in ("CC BY-SA 4.0", "Rastogi", "Apache-2.0", "SmolLM2-135M-Instruct", "train_offline_labeler.py"):
        assert needed in readme


def test_adapter_is_package_data():
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "igft.models" in setuptools["packages"]
    patterns = setuptools["package-data"]["igft.models"]
    shipped = {p.name for p in SHIPPED.iterdir() if p.is_file()}
    covered = {p.name for pattern in patterns for p in (REPO / "igft" / "models").glob(pattern)}
    assert shipped <= covered and {"adapter_config.json", "adapter_model.safetensors"} <= covered


@pytest.mark.slow  # loads SmolLM2 + the adapter and labels one 3-message conversation (seconds)
def test_labeler_answers_in_gifa_format(tmp_path):
    from transformers import AutoTokenizer

    from igft.data import load_conversations
    from igft.finetune.chat_template import install_training_template
    from igft.gifa import GifaConfig, label_dataset
    from igft.gifa.prompts import build_labeling_messages
    from igft.llm.base import HashingEmbedder

    data = tmp_path / "one.csv"
    data.write_text("conversation_number,conversation,index,intent\n"
                    "0,\"customer: Hi, my parcel has not arrived yet.\",0,x\n"
                    "0,assistant: Sorry about that. What is your order number?,1,y\n"
                    "0,customer: It is 5521.,2,z\n")
    dataset = load_conversations(data)
    lm = build_lm("local:igft-labeler")
    # No tokenizer ships with the adapter: the base model's template must render the training prompt.
    config = GifaConfig(max_retries=0)
    messages = list(build_labeling_messages(config.instruction, dataset.conversations[0], config.method, ()))
    trained = AutoTokenizer.from_pretrained(local_models.resolve_model_path("smollm2"))
    install_training_template(trained)
    assert (lm.inner.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            == trained.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    result = label_dataset(dataset, lm, HashingEmbedder(), config, progress=False)
    assert result.stats["calls"] == 1 and result.stats["failures"] == 0  # one answer, 3 parseable lines
    assert result.stats["labeled_messages"] == 3
