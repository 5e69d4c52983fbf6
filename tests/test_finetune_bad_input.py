"""Bad input to the GPU-facing paths gets one clear line (exit 2) and loses nothing already done."""
from __future__ import annotations

import pytest

from igft.cli import main
from igft.finetune.versions import VersionTooOld, check_package, too_old


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_quantize_4bit_without_bitsandbytes(monkeypatch, tmp_path, capsys):
    import igft.finetune.model_loading as loading

    real = loading._installed
    monkeypatch.setattr(loading, "_installed", lambda m: False if m == "bitsandbytes" else real(m))
    assert main(["finetune", "--quantize", "4bit", "--max-steps", "1", "--max-conversations", "2",
                 "--out", str(tmp_path / "run")]) == 2
    assert "pip install 'bitsandbytes>=0.47'" in _one_line(capsys)
    assert main(["classify", "train", "--task", "dummy_data/classify/dialogue_initiative.csv", "--method", "head",
                 "--quantize", "4bit", "--out", str(tmp_path / "m")]) == 2
    assert "bitsandbytes" in _one_line(capsys)


def test_backend_vllm_without_vllm(tmp_path, capsys):
    assert main(["generate", "--backend", "vllm", "--max-samples", "2", "--out", str(tmp_path / "p.jsonl")]) == 2
    assert "pip install 'vllm>=0.12'" in _one_line(capsys)


def test_model_that_cannot_be_loaded_offline(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["finetune", "--model", "no-such-org/no-such-model", "--max-steps", "1", "--max-conversations", "2",
                 "--out", str(tmp_path / "run")]) == 2
    err = _one_line(capsys)
    assert "no-such-org/no-such-model" in err and "offline" in err


def test_grad_accum_zero(tmp_path, capsys):
    assert main(["finetune", "--grad-accum", "0", "--max-steps", "1", "--out", str(tmp_path / "run")]) == 2
    assert "--grad-accum must be a positive integer, got 0" in _one_line(capsys)
    assert main(["classify", "train", "--task", "dummy_data/classify/dialogue_initiative.csv", "--method", "generative",
                 "--grad-accum", "0", "--out", str(tmp_path / "m")]) == 2
    assert "--grad-accum must be a positive integer, got 0" in _one_line(capsys)


def test_adapter_folder_without_adapter_config(tmp_path, capsys):
    folder = tmp_path / "adapter"
    folder.mkdir()
    assert main(["generate", "--adapter", str(folder), "--max-samples", "1", "--out", str(tmp_path / "p.jsonl")]) == 2
    assert "no adapter_config.json" in _one_line(capsys)


def test_report_to_a_tracker_that_is_not_installed(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    assert main(["finetune", "--report-to", "wandb", "--max-steps", "1", "--out", str(tmp_path / "run")]) == 2
    assert "pip install wandb" in _one_line(capsys)


def test_version_floor_names_package_and_version():
    assert too_old("0.19.1", "0.20") and not too_old("1.16.0", "0.20") and not too_old("4.56.0.dev0", "4.56")
    with pytest.raises(VersionTooOld, match=r"trl 0\.12\.0 is too old; igft needs trl>=0\.20"):
        check_package("trl", "0.20", installed="0.12.0")
    with pytest.raises(VersionTooOld, match="not installed"):
        check_package("surely-not-a-package-igft", "1.0")
