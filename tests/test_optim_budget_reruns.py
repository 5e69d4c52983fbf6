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


def _args(tmp_path, out, mode="record", cassette="cassette"):
    return ["optimize", "--algo", "random", "--llm", "scripted", "--embedder", "hashing", "--mode", mode,
            "--cassette", str(tmp_path / cassette), "--max-conversations", "6", "--r", "2", "--train-r", "1",
            "--out", str(tmp_path / out), "--iterations", "3"]


def _runs(folder):
    return json.loads((folder / "usage.json").read_text())["runs"]


def _result(folder):
    return json.loads((folder / "result.json").read_text())


def _lines(folder):
    return (folder / "history.jsonl").read_text().splitlines()


def test_no_resume_starts_a_new_job_whose_budget_counts_from_zero(tmp_path):
    out = tmp_path / "out"
    main([*_args(tmp_path, "out"), "--max-calls", "4"])
    main([*_args(tmp_path, "out"), "--max-calls", "4"])  # same job: nothing left
    first_job = [r["live_calls"] for r in _runs(out)]
    assert first_job[0] > 0 and first_job[1] == 0
    # --no-resume is a new job: its cap starts from zero. The cassette replays the 4 answers recorded by
    # job 1 for free, 4 more are live, so the seed trial completes (then the final scoring, past the cap).
    main([*_args(tmp_path, "out"), "--max-calls", "4", "--no-resume"])
    runs = _runs(out)
    assert [r["job"] for r in runs] == [1, 1, 2]
    assert [r["live_calls"] for r in runs[:2]] == first_job  # the old entries stay readable
    result = _result(out)
    assert result["trials"] == 1 and runs[2]["cached_calls"] == first_job[0]
    assert runs[2]["live_calls"] - result["final_scoring"]["live_calls"] == 4
    usage = _result(out)["usage"]
    # result totals: this job only, and the whole folder beside it
    assert usage["job"]["job"] == 2 and usage["job"]["runs"] == 1 and usage["job"]["live_calls"] == runs[2]["live_calls"]
    assert usage["folder"]["runs"] == 3 and usage["folder"]["live_calls"] == sum(r["live_calls"] for r in runs)
    # a plain rerun continues job 2 (not job 1's spend)
    main([*_args(tmp_path, "out"), "--max-calls", "4"])
    assert _runs(out)[3]["job"] == 2 and _runs(out)[3]["live_calls"] == 0


def test_max_calls_counts_live_calls_only_so_a_replay_is_never_capped(tmp_path):
    main(_args(tmp_path, "rec"))
    recorded = _result(tmp_path / "rec")
    assert recorded["live_calls"] > 5 and not recorded["stopped"]
    # The same search replayed from the cassette under a cap of 0 live calls: every call is cached, so
    # it runs to the end with the recorded history (the old per-search cap counted replayed calls too).
    assert main([*_args(tmp_path, "rep", mode="replay"), "--max-calls", "0"]) == 0
    assert _lines(tmp_path / "rep") == _lines(tmp_path / "rec")
    replay = _result(tmp_path / "rep")
    assert replay["live_calls"] == 0 and not replay["stopped"] and replay["llm_calls"] == recorded["llm_calls"]


def test_final_scoring_is_charged_to_the_ledger_and_reported(tmp_path):
    out = tmp_path / "out"
    # 3 calls per conversation (scripted retries), 6 per trial: the seed trial fits 12 calls, the child does not.
    main([*_args(tmp_path, "out"), "--max-calls", "12"])
    result = _result(out)
    assert result["stopped"] and "max_calls=12" in result["stopped"] and result["trials"] == 1
    final = result["final_scoring"]
    finals = [json.loads(line) for line in _lines(out) if json.loads(line)["phase"] == "final"]
    assert final["trials"] == len(finals) == 3 and final["calls"] == sum(t["calls"] for t in finals) > 0
    assert final["after_budget_stop"] and final["live_calls"] == final["calls"]  # record mode: all live
    ledger = _runs(out)[0]
    # the ledger holds every live call of the run, the final scoring's included; only that part ran past the cap
    assert ledger["live_calls"] == result["usage"]["live_calls"]
    assert ledger["live_calls"] - final["live_calls"] <= 12 < ledger["live_calls"]


def test_a_recording_stopped_by_a_live_cap_replays_to_the_same_stop(tmp_path):
    main([*_args(tmp_path, "rec"), "--max-calls", "12"])
    run_file = json.loads((tmp_path / "cassette" / "run.json").read_text())
    assert run_file["recorded_trials"] == 1 and run_file["options"]["max_calls"] == 12
    # A replay makes no live call, so the cap alone would never stop it (and it would run off the cassette).
    assert main(["optimize", "--algo", "random", "--mode", "replay", "--cassette", str(tmp_path / "cassette"),
                 "--out", str(tmp_path / "rep")]) == 0
    assert _lines(tmp_path / "rep") == _lines(tmp_path / "rec")
    assert _result(tmp_path / "rep")["live_calls"] == 0
    # Recording on with a higher cap finishes the search; run.json then no longer marks a stop.
    main([*_args(tmp_path, "rec"), "--max-calls", "100"])
    assert "recorded_trials" not in json.loads((tmp_path / "cassette" / "run.json").read_text())
