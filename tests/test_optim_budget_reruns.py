"""`igft optimize` budgets count every run in --out (the usage ledger shared with `igft label`)."""
import json

from igft.cli import main


def test_optimize_max_calls_counts_earlier_runs_in_the_out_folder(tmp_path):
    args = ["optimize", "--algo", "random", "--llm", "scripted", "--embedder", "hashing", "--mode", "record",
            "--cassette", str(tmp_path / "cassette"), "--max-conversations", "6", "--r", "2", "--train-r", "1",
            "--out", str(tmp_path / "out"), "--iterations", "3"]
    main([*args, "--max-calls", "4"])
    ledger = json.loads((tmp_path / "out" / "usage.json").read_text())
    first = ledger["runs"][0]["live_calls"]
    assert 0 < first <= 4
    # A rerun with the same cap has nothing left to spend: it makes no live call.
    main([*args, "--max-calls", "4"])
    runs = json.loads((tmp_path / "out" / "usage.json").read_text())["runs"]
    assert len(runs) == 2 and runs[1]["live_calls"] == 0
    assert sum(r["live_calls"] for r in runs) <= 4
