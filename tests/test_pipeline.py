"""`igft demo` and its YAML config: every artifact lands under one folder, and dummy mode is repeatable."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from igft.cli import main
from igft.pipeline import ConfigError, config_from_dict, load_config, notebook_config

from conftest import REPO_ROOT


def test_example_config_loads_and_matches_the_defaults():
    cfg = load_config(REPO_ROOT / "examples" / "demo.yaml")
    assert cfg.to_dict() == config_from_dict({}).to_dict()


@pytest.mark.parametrize("values, fragment", [
    ({"serch": {}}, "unknown key(s) ['serch']; valid keys: ['data', 'mode'"),
    ({"stage2": {"formt": "response"}}, "stage2: unknown key(s) ['formt']; valid keys: ['enabled', 'format'"),
    ({"stage2": {"max_steps": "ten"}}, "stage2.max_steps: expected int"),
    ({"mode": "dummy"}, "mode 'dummy' is not one of ['live', 'record', 'replay']"),
    ({"search": {"backbones": ["random", "genetic"]}}, "unknown backbone(s) ['genetic']"),
])
def test_bad_config_values_are_rejected_with_the_valid_ones(values, fragment):
    with pytest.raises(ConfigError) as err:
        config_from_dict(values)
    assert fragment in str(err.value)


def test_demo_with_a_bad_config_file_exits_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("mode: replay\nstage1:\n  labeller: gifa\n")
    assert main(["demo", "--config", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown key(s) ['labeller']" in err and "valid keys: ['labeler'" in err
    assert not (tmp_path / "out").exists(), "nothing may run on a bad config"


def test_notebook_config_refuses_user_data_in_dummy_mode():
    with pytest.raises(ConfigError, match="DATA_PATH = None"):
        notebook_config(True, data="my.csv")
    live = notebook_config(False, data="my.csv", llm="openai:gpt-4o-mini")
    assert live.mode == "record" and live.cassette_dir and live.llm == "openai:gpt-4o-mini"


ARTIFACTS = [
    "config.yaml", "summary.json",
    "stage1/labels.csv", "stage1/catalog.csv", "stage1/stats.json", "stage1/report.json", "stage1/labelers.csv",
    "search/comparison.png", "search/progress_calls.png",
    *[f"search/{b}/{f}" for b in ("random", "greedy", "see", "hyperband_see")
      for f in ("history.jsonl", "result.json", "progress_calls.png")],
    "stage2/finetune/adapter/adapter_model.safetensors", "stage2/finetune/config.yaml",
    "stage2/finetune/train_log.jsonl", "stage2/finetune/loss.png", "stage2/predictions.jsonl", "stage2/scores.json",
]


def _history_objectives(path: Path) -> list[tuple]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(r["slot"], r["instruction"], r["objective"]) for r in rows]


@pytest.mark.slow
def test_demo_writes_every_artifact_and_replays_identically(tmp_path):
    runs = []
    for name in ("first", "second"):
        out = tmp_path / name
        proc = subprocess.run([sys.executable, "-m", "igft", "demo", "--out", str(out), "--max-steps", "2",
                               "--no-progress"], capture_output=True, text=True, cwd=tmp_path, timeout=1500)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "stage 1" in proc.stdout and "stage 2" in proc.stdout
        missing = [a for a in ARTIFACTS if not (out / a).is_file()]
        assert not missing, f"demo did not write {missing}"
        runs.append(out)
    first, second = runs
    assert (first / "stage1/labels.csv").read_text() == (second / "stage1/labels.csv").read_text()
    for backbone in ("random", "greedy", "see", "hyperband_see"):
        assert _history_objectives(first / f"search/{backbone}/history.jsonl") == \
            _history_objectives(second / f"search/{backbone}/history.jsonl")
    assert json.loads((first / "stage2/scores.json").read_text()) == json.loads((second / "stage2/scores.json").read_text())
    summary = json.loads((first / "summary.json").read_text())
    assert summary["stage1"]["messages"] == 267 and set(summary["search"]) == {"random", "greedy", "see", "hyperband-see"}
