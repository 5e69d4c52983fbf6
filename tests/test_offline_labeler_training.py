"""The offline-labeler training script end to end on a tiny random model: it trains on GIFA samples
with whole services held out, saves an adapter, and that adapter loads as an igft LM that GIFA runs."""
import importlib.util
import json
from pathlib import Path

import pytest

from igft.data import load_conversations
from igft.errors import IgftError
from igft.gifa import GifaConfig, label_dataset
from igft.llm.base import HashingEmbedder
from igft.resources import toy_conversations_path

from tiny_models import tiny_model

REPO = Path(__file__).resolve().parent.parent


def load_script():
    spec = importlib.util.spec_from_file_location("train_offline_labeler", REPO / "benchmarks" / "train_offline_labeler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def services(tmp_path):
    """Three 'services' cut from igft's own toy conversations."""
    dataset = load_conversations(toy_conversations_path())
    folder = tmp_path / "services"
    folder.mkdir()
    for name, part in zip(("Alpha_1", "Beta_1", "Gamma_1"), dataset.split((0.4, 0.3, 0.3), shuffle=False)):
        part.head(3).save(folder / f"{name}.csv")
    return folder


@pytest.mark.slow  # trains a tiny model for 2 steps and generates with it (seconds on an idle 2-core CPU)
def test_training_script_saves_an_adapter_gifa_can_use(services, tmp_path):
    script = load_script()
    out = tmp_path / "run"
    code = script.main(["--sources", str(services), "--validation-services", "Gamma_1", "--embedder", "hashing",
                        "--model", str(tiny_model("qwen2")), "--max-conversations-per-service", "2",
                        "--window-messages", "3", "--max-steps", "2", "--grad-accum", "1", "--eval-steps", "2",
                        "--max-seq-len", "4096", "--max-validation-samples", "2", "--extra-sources",
                        "--base-dtype", "fp32", "--max-minutes", "5", "--out", str(out), "--ship", str(out / "ship")])
    assert code == 0
    stats = json.loads((out / "sample_stats.json").read_text())
    assert stats["train_sources"] == ["Alpha_1", "Beta_1"] and stats["validation_sources"] == ["Gamma_1"]
    train = [json.loads(line) for line in (out / "samples_train.jsonl").read_text().splitlines()]
    assert train and {s["source"] for s in train} <= {"Alpha_1", "Beta_1"}
    assert all(s["n_messages"] <= 3 for s in train)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert any("loss" in r for r in log) and any("eval_loss" in r for r in log)
    adapter = out / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    assert json.loads((adapter / "igft.json").read_text())["format"] == "gifa-labeler"

    from igft.llm.local_backend import LocalHFLM
    lm = LocalHFLM(str(adapter))
    dataset = load_conversations(services / "Gamma_1.csv").head(2)
    result = label_dataset(dataset, lm, HashingEmbedder(), GifaConfig(max_retries=0, max_tokens=24), progress=False)
    # A random tiny model labels nothing usefully; what counts is that GIFA ran it on every conversation.
    assert result.stats["calls"] == 2 and result.stats["conversations"] == 2

    # The shipped copy: fp16 weights and configs only (no tokenizer), and it loads the same way.
    from safetensors.torch import load_file
    import torch
    ship = out / "ship"
    assert sorted(p.name for p in ship.iterdir()) == ["adapter_config.json", "adapter_model.safetensors", "igft.json"]
    weights = load_file(str(ship / "adapter_model.safetensors"))
    assert weights and all(w.dtype == torch.float16 for w in weights.values())
    shipped = LocalHFLM(str(ship))
    assert label_dataset(dataset, shipped, HashingEmbedder(), GifaConfig(max_retries=0, max_tokens=24),
                         progress=False).stats["calls"] == 2

    # A warm start (--init-adapter): with learning rate 0 the continued adapter keeps the shipped
    # weights (a fresh LoRA would start with B = 0), and its LoRA config is the shipped one.
    again = tmp_path / "again"
    assert script.main(["--sources", str(services), "--validation-services", "Gamma_1", "--embedder", "hashing",
                        "--model", str(tiny_model("qwen2")), "--max-conversations-per-service", "1",
                        "--window-messages", "3", "--max-steps", "1", "--grad-accum", "1", "--eval-steps", "1",
                        "--max-seq-len", "4096", "--max-validation-samples", "1", "--extra-sources",
                        "--base-dtype", "fp32", "--learning-rate", "0", "--lora-r", "4", "--init-adapter", str(ship),
                        "--out", str(again)]) == 0
    continued = load_file(str(again / "adapter" / "adapter_model.safetensors"))
    assert continued.keys() == weights.keys()
    assert any(w.abs().sum() > 0 for k, w in weights.items() if "lora_B" in k)
    assert all(torch.allclose(continued[k].float(), weights[k].float()) for k in weights)
    assert json.loads((again / "adapter" / "adapter_config.json").read_text())["r"] == \
        json.loads((ship / "adapter_config.json").read_text())["r"] != 4
    meta = json.loads((again / "adapter" / "igft.json").read_text())
    assert meta["init_adapter"] == str(ship) and meta["init_adapter_train_sources"] == ["Alpha_1", "Beta_1"]


def test_time_limit_stops_training():
    script = load_script()
    from transformers import TrainerControl, TrainerState
    callback, control = script.time_limit(0.0), TrainerControl()
    callback.on_train_begin(None, TrainerState(), control)
    assert callback.on_step_end(None, TrainerState(), control).should_training_stop


def test_unknown_validation_service_is_one_clear_error(services, tmp_path):
    script = load_script()
    from igft.gifa.training_samples import TrainingSampleError
    with pytest.raises(TrainingSampleError, match="not among the inputs"):
        script.build_samples(script.parse_args(["--sources", str(services), "--validation-services", "Nope_1",
                                                "--embedder", "hashing", "--out", str(tmp_path / "x")]))


def test_init_adapter_without_an_adapter_is_one_clear_error(services, tmp_path):
    script = load_script()
    with pytest.raises(IgftError, match="has no adapter_config.json"):
        script.main(["--sources", str(services), "--init-adapter", str(tmp_path), "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()  # stopped before anything was built or written


def test_synthetic_runs_and_whole_conversations_add_samples(services, tmp_path):
    script = load_script()
    common = ["--sources", str(services), "--validation-services", "Gamma_1", "--extra-sources",
              "--embedder", "hashing", "--out", str(tmp_path / "x")]
    plain = script.build_samples(script.parse_args(common + ["--window-messages", "4"]))
    whole = script.build_samples(script.parse_args(common + ["--window-messages", "0", "--synthetic-runs", "2",
                                                             "--synthetic-messages", "40", "--synthetic-intents", "6"]))
    # Window 0 keeps each conversation whole: one sample per SGD-style conversation, plus the synthetic runs'.
    n_services = sum(1 for s in whole.train if not s["source"].startswith("synthetic_"))
    assert n_services < len(plain.train)
    synthetic = [s for s in whole.train if s["source"].startswith("synthetic_")]
    assert {s["source"] for s in synthetic} == {"synthetic_1000", "synthetic_1001"}
    assert whole.stats["n_synthetic_samples"] == len(synthetic) and whole.stats["n_train_samples"] == len(whole.train)


def test_base_dtype_auto_picks_bf16_only_where_the_cpu_runs_it(monkeypatch):
    # bf16 on a CPU without bf16 hardware (AVX2) was measured 13x slower than fp32: 700-780 s per step
    # against 55-59 s (results/offline_labeler.md), so 'auto' must fall back to fp32 there.
    import torch

    script = load_script()
    assert script.base_dtype("fp32") == "fp32" and script.base_dtype("bf16") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for native, expected in ((False, "fp32"), (True, "bf16")):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda native=native: native)
        assert script.base_dtype("auto") == expected
