"""`igft demo` and its YAML config: every artifact lands under one folder, and dummy mode is repeatable."""
from __future__ import annotations

import json
import os
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
    ({"search": {"options": {"feedbak_rounds": 3}}}, "search.options: unknown option(s) ['feedbak_rounds']; valid: ['adaptive'"),
    ({"search": {"options": {"eta": "two"}}}, "search.options: eta: expected int, got 'two'"),
    ({"search": {"options": {"feedback_gold": "all"}}}, "feedback_gold: 'all' is not one of ['examples', 'names', 'none']"),
    ({"search": {"options": {"max_calls": 5}}}, "set search.max_calls, not search.options.max_calls"),
    ({"search": {"options": {"seed": 5}}}, "set seed (top level), not search.options.seed"),
    ({"search": {"feedback_gold": "names"}}, "search: unknown key(s) ['feedback_gold']; valid keys: ['backbones', 'max_trials', 'max_calls', 'concurrency', 'options']"),
    ({"search": {"max_calls": -3}}, "search: max_calls must be 0 or more"),
])
def test_bad_config_values_are_rejected_with_the_valid_ones(values, fragment):
    with pytest.raises(ConfigError) as err:
        config_from_dict(values)
    assert fragment in str(err.value)


def test_search_options_default_to_the_optimize_table_and_load_from_yaml(tmp_path):
    from igft.optimizers.options import options

    cfg = config_from_dict({})
    assert cfg.search.options == {} and cfg.search.concurrency == options()["concurrency"].default
    path = tmp_path / "c.yaml"
    path.write_text("search:\n  backbones: [see]\n  options:\n    feedback_rounds: 3\n    split: [0.3, 0.4, 0.3]\n")
    assert load_config(path).search.options == {"feedback_rounds": 3, "split": [0.3, 0.4, 0.3]}


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
    "stage1/labelers.png", "search/comparison.png", "search/progress_calls.png",
    *[f"search/{b}/{f}" for b in ("random", "greedy", "see", "hyperband_see")
      for f in ("history.jsonl", "result.json", "progress_calls.png")],
    "stage2/finetune/adapter/adapter_model.safetensors", "stage2/finetune/config.yaml",
    "stage2/finetune/train_log.jsonl", "stage2/finetune/loss.png", "stage2/predictions.jsonl", "stage2/scores.json",
    "stage2/base_predictions.jsonl", "stage2/base_scores.json", "stage2/base_vs_finetuned.png",
]


def _history_objectives(path: Path) -> list[tuple]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(r["slot"], r["instruction"], r["objective"]) for r in rows]


def _demo(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("IGFT_PAPER_RUNS", "IGFT_PAPER_STAGE1", "IGFT_VERBOSE")}
    proc = subprocess.run([sys.executable, "-m", "igft", "demo", "--out", str(out), "--no-progress", *extra],
                          capture_output=True, text=True, cwd=out.parent, timeout=1800, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_demo_tells_the_story_and_stage2_meets_its_targets(tmp_path):
    """The demo's own default run: labelers first, replays labelled as machinery, Stage 2 beside its base."""
    out = tmp_path / "demo"
    proc = _demo(out)
    missing = [a for a in ARTIFACTS if not (out / a).is_file()]
    assert not missing, f"demo did not write {missing}"
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("igft pipeline [replay mode]") and lines[1].startswith("Labelers on toy_conversations.csv")
    assert any("exercise the search machinery" in line for line in lines), "SmolLM2's instructions must say what they are"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stage1"]["messages"] == 267 and set(summary["search"]) == {"random", "greedy", "see", "hyperband-see"}
    names = [row["labeler"] for row in summary["labelers"]]
    assert names[0] == "embeddings (automatic k)" and "gifa (replay, igft-labeler, SGD-trained)" in names
    assert summary["stage1"]["llm"] == "local:igft-labeler" and not summary["stage1"]["machinery_only"]
    assert all(s["models"] == {"llm": "local:smollm2", "gifa_llm": "local:igft-labeler"} for s in summary["search"].values())
    # the hybrid row is the bundled SmolLM2 recording replayed: every call from the cassette, none live
    assert any(n.startswith("hybrid (replay") for n in names), names
    assert summary["hybrid"]["llm_calls"] > 0 and summary["hybrid"]["live_llm_calls"] == 0, summary["hybrid"]
    assert summary["hybrid"]["live_embedded_texts"] == 0
    assert any(line.lstrip().startswith("hybrid (replay") for line in lines[:8])
    assert {"stage1_labelers", "stage2"} <= set(summary["cpu_seconds"])
    assert {"train", "generate_finetuned", "generate_base"} <= set(summary["stage2"]["seconds"])
    stage2 = summary["stage2"]
    for model in ("finetuned", "base"):
        assert {"intent_f1", "malformed_share"} <= set(stage2[model]), stage2
        assert 0.0 <= stage2[model]["intent_f1"] <= 1.0
    assert stage2["finetuned"]["malformed_share"] <= 0.10, stage2["finetuned"]
    assert stage2["finetuned"]["n"] == stage2["base"]["n"] > 0
    # the replays are exact: a second run (without Stage 2) gives the same labels and search histories
    again = tmp_path / "again"
    _demo(again, "--no-stage2")
    assert (out / "stage1/labels.csv").read_text() == (again / "stage1/labels.csv").read_text()
    for backbone in ("random", "greedy", "see", "hyperband_see"):
        assert _history_objectives(out / f"search/{backbone}/history.jsonl") == \
            _history_objectives(again / f"search/{backbone}/history.jsonl")


def test_demo_with_a_wrong_paper_runs_path_fails_first_with_one_line(tmp_path, capsys):
    assert main(["demo", "--paper-runs", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--paper-runs" in err and "toy_conversations.csv" in err
    assert not (tmp_path / "out").exists()
