"""`igft optimize` end to end through the real client layer (scripted LM + hashing embedder, cassettes)."""
from __future__ import annotations

import json

import pytest

from igft.cli import main

SMALL = {"random": ["--iterations", "3"], "greedy": ["--iterations", "3", "--no-lagged-feedback"],
         "see": ["--population-size", "2", "--feedback-rounds", "1", "--global-rounds", "1", "--semantic-rounds", "1"],
         "hyperband-see": ["--hours", "0.03", "--r-min", "1", "--r-max", "2", "--brackets", "1", "--feedback-rounds", "1"]}


def optimize(tmp_path, algo, mode, out, *extra):
    return main(["optimize", "--algo", algo, "--llm", "scripted", "--embedder", "hashing", "--mode", mode,
                 "--cassette", str(tmp_path / "cassette"), "--max-conversations", "6", "--r", "2", "--train-r", "1",
                 "--out", str(out), *SMALL[algo], *extra])


@pytest.mark.parametrize("algo", list(SMALL))
def test_optimize_records_then_replays_the_same_history(tmp_path, algo, capsys):
    assert optimize(tmp_path, algo, "record", tmp_path / "rec") == 0
    result = json.loads((tmp_path / "rec" / "result.json").read_text())
    assert {"best_instruction", "best_objective", "trials", "llm_calls", "live_calls", "tokens"} <= set(result)
    assert result["trials"] >= 3 and result["llm_calls"] > 0
    assert (tmp_path / "rec" / "progress_calls.png").stat().st_size > 1000
    run_file = json.loads((tmp_path / "cassette" / "run.json").read_text())
    assert run_file["algo"] == algo
    # Replay: settings come from run.json, every call from the cassette, same trials.
    assert main(["optimize", "--algo", algo, "--mode", "replay", "--cassette", str(tmp_path / "cassette"),
                 "--out", str(tmp_path / "rep"), "--concurrency", "3"]) == 0
    strip = lambda p: [{k: v for k, v in json.loads(line).items()} for line in p.read_text().splitlines()]
    assert strip(tmp_path / "rep" / "history.jsonl") == strip(tmp_path / "rec" / "history.jsonl")
    replay = json.loads((tmp_path / "rep" / "result.json").read_text())
    assert replay["live_calls"] == 0 and replay["trials"] == result["trials"]


def _cassette_requests(path):
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    return [(e["model"], "\n".join(m["content"] for m in e["request"]["messages"])) for e in entries]


def test_optimize_with_a_separate_gifa_llm_records_each_model_in_its_own_cassette(tmp_path, capsys):
    """--gifa-llm labels inside the trials; --llm writes the instructions; a replay needs neither model."""
    assert optimize(tmp_path, "random", "record", tmp_path / "rec", "--gifa-llm", "scripted:gifa") == 0
    cassette = tmp_path / "cassette"
    meta, gifa = _cassette_requests(cassette / "lm.jsonl"), _cassette_requests(cassette / "gifa_lm.jsonl")
    gifa_prompt = "Answer with one line per"  # GIFA's output rule; no meta-prompt has it
    assert meta and all(model == "scripted" and gifa_prompt not in text for model, text in meta)
    assert gifa and all(model == "scripted:gifa" and gifa_prompt in text for model, text in gifa)
    assert json.loads((cassette / "run.json").read_text())["options"]["gifa_llm"] == "scripted:gifa"
    assert main(["optimize", "--algo", "random", "--mode", "replay", "--cassette", str(cassette),
                 "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "history.jsonl").read_text() == (tmp_path / "rec" / "history.jsonl").read_text()
    replay = json.loads((tmp_path / "rep" / "result.json").read_text())
    assert replay["live_calls"] == 0 and replay["llm_calls"] == len(meta) + len(gifa)
    assert replay["models"] == {"llm": "scripted", "gifa_llm": "scripted:gifa"}


def test_optimize_budget_and_resume_from_the_output_folder(tmp_path, capsys):
    # GIFA retries the scripted "ok" answer: 3 calls per conversation, 6 per trial, +2 meta-prompt calls per child.
    assert optimize(tmp_path, "random", "record", tmp_path / "out", "--max-calls", "12") == 0
    stopped = json.loads((tmp_path / "out" / "result.json").read_text())
    assert stopped["stopped"] and stopped["llm_calls"] <= 12 and stopped["trials"] == 1
    search_lines = lambda: [line for line in (tmp_path / "out" / "history.jsonl").read_text().splitlines()
                            if json.loads(line)["phase"] != "final"]
    first = search_lines()
    assert len(first) == 1
    assert stopped["best_test"] is not None and stopped["n_test"] == 2  # the test score is made even so
    # Rerun with a larger budget (run.json keeps the recorded one; a flag overrides it): finished trials are
    # reused (their lines stay), the search continues.
    assert optimize(tmp_path, "random", "record", tmp_path / "out", "--max-calls", "100") == 0
    lines = search_lines()
    assert lines[: len(first)] == first and len(lines) == 3


def test_optimize_replay_without_cassette_errors_in_one_line(tmp_path, capsys):
    code = main(["optimize", "--algo", "see", "--mode", "replay", "--cassette", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--mode record" in err
