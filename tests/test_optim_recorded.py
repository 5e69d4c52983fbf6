"""The recorded toy runs under simulated_runs/ (instructions by SmolLM2, GIFA labels by igft-labeler)
replay with no model, no key, no network — give identical histories at concurrency 1 and 4, and write
the held-out figures into result.json."""
from __future__ import annotations

import json

import pytest

from igft.cli import main
from igft.resources import simulated_runs_dir

RECORDED = ["random", "greedy", "see", "hyperband-see"]


@pytest.mark.parametrize("algo", RECORDED)
def test_recorded_run_replays_identically_at_concurrency_1_and_4(tmp_path, algo, capsys):
    folder = simulated_runs_dir() / algo.replace("-", "_")
    assert (folder / "lm.jsonl").is_file() and (folder / "run.json").is_file()
    for concurrency in (1, 4):
        out = tmp_path / f"c{concurrency}"
        assert main(["optimize", "--algo", algo, "--mode", "replay", "--out", str(out),
                     "--concurrency", str(concurrency)]) == 0
    one = (tmp_path / "c1" / "history.jsonl").read_text()
    assert one == (tmp_path / "c4" / "history.jsonl").read_text()
    result = json.loads((tmp_path / "c1" / "result.json").read_text())
    assert result["live_calls"] == 0 and result["trials"] >= 3 and result["llm_calls"] > 0
    assert result["trials"] + result["final_trials"] == len(one.splitlines())
    for key in ("best_val", "best_test", "seed_val", "seed_test", "test_gain"):
        assert isinstance(result[key], float), key
    assert result["test_gain"] == pytest.approx(result["best_test"] - result["seed_test"])
    assert result["n_train"] >= 2 and result["n_validation"] >= 2 and result["n_test"] >= 2
    # GIFA inside the trials is the offline labeler's, from its own cassette: its scores carry signal
    # (the untrained SmolLM2's were about 0), whatever SmolLM2's instructions are worth.
    assert (folder / "gifa_lm.jsonl").is_file()
    assert result["models"] == {"llm": "local:smollm2", "gifa_llm": "local:igft-labeler"}
    assert result["seed_val"] > 0.05 and result["seed_test"] > 0.05, result
