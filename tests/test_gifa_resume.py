"""Resume replays: `igft label` killed with -9 and rerun sends exactly the requests of an uninterrupted run.

Against igft's loopback server (127.0.0.1), whose answers depend on the known intents the prompt shows,
so a resumed run that rebuilt another snapshot would label differently. Also: --retry-failed, the
failed-share exit status, budgets over three reruns, --plan.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from igft.cli import main
from igft.data import Conversation, Dataset, Message
from igft.llm.loopback_server import LoopbackServer

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = [("customer", "hello my parcel {c} never arrived"), ("assistant", "sorry, what is your order number"),
             ("customer", "it is {c}{c}"), ("assistant", "thanks, a new parcel is on its way"),
             ("customer", "thanks bye")]
OTHER = [("customer", "hi I was charged twice"), ("assistant", "sorry about that, which order"),
         ("customer", "order {c}"), ("assistant", "refunded the second charge")]


def dataset(n=12) -> Dataset:
    convs = []
    for c in range(n):
        lines = TEMPLATES if c % 3 else OTHER
        convs.append(Conversation(c, tuple(Message(c, i, role, text.format(c=c)) for i, (role, text) in enumerate(lines))))
    return Dataset(convs, "resume")


def chat_bodies(server) -> list[str]:
    # A request cut off by the kill arrives without its body: it was never a whole request.
    return [json.dumps(r.body, sort_keys=True) for r in server.requests
            if r.path.endswith("/chat/completions") and r.body.get("messages")]


def label_args(server, csv, out, cassette, *extra):
    return ["label", "--data", str(csv), "--llm", f"openai-compatible:{server.url}:m", "--embedder", "hashing",
            "--mode", "record", "--cassette", str(cassette), "--out", str(out), "--no-progress", *map(str, extra)]


def labels_of(out: Path) -> dict:
    frame = pd.read_csv(out / "labels.csv")
    return {(int(c), int(i)): t for c, i, t in frame[["conversation_number", "index", "intent"]].values}


@pytest.mark.parametrize("window", [1, 4])
def test_kill_9_then_resume_equals_an_uninterrupted_run_and_replays(tmp_path, window):
    csv = dataset().save(tmp_path / "data.csv")
    with LoopbackServer(latency=0.02) as server:
        assert main(label_args(server, csv, tmp_path / "ref", tmp_path / "ref_cas", "--window", window)) == 0
        reference = chat_bodies(server)
        assert len(reference) == 12
        server.requests.clear()

        # The same command in a child process, killed with SIGKILL after its 5th chat request arrives.
        arrived = threading.Event()
        seen = []

        def watch(path, body):
            if path.endswith("/chat/completions"):
                seen.append(path)
                if len(seen) >= 5:
                    arrived.set()
                    return "hang"  # keep it (and its window mates) in flight until the kill
            return None

        server.fault_for, server.hang_seconds = watch, 10.0
        cmd = [sys.executable, "-m", "igft", *label_args(server, csv, tmp_path / "out", tmp_path / "cas", "--window", window)]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        child = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert arrived.wait(timeout=120), "the child never reached its 5th request"
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
        assert child.returncode == -signal.SIGKILL
        server.fault_for = None
        server._stopping.set()  # release the hung handlers
        before = chat_bodies(server)
        server.requests.clear()
        server._stopping.clear()

        assert main(label_args(server, csv, tmp_path / "out", tmp_path / "cas", "--window", window)) == 0
        resumed = chat_bodies(server)

    # Nothing the resumed run asked is foreign to the uninterrupted run, and together they asked it all.
    assert set(resumed) <= set(reference) and set(before) <= set(reference)
    assert set(before) | set(resumed) == set(reference)
    assert labels_of(tmp_path / "out") == labels_of(tmp_path / "ref")

    # The cassette written across the kill replays with zero live calls.
    assert main(["label", "--data", str(csv), "--cassette", str(tmp_path / "cas"), "--mode", "replay",
                 "--out", str(tmp_path / "replay"), "--no-progress"]) == 0
    stats = json.loads((tmp_path / "replay" / "stats.json").read_text())
    assert stats["usage"]["live_calls"] == 0 and stats["usage"]["cached_calls"] == 12
    assert labels_of(tmp_path / "replay") == labels_of(tmp_path / "ref")


def test_window_boundaries_do_not_move_when_resuming_after_max_calls(tmp_path):
    csv = dataset().save(tmp_path / "data.csv")
    with LoopbackServer() as server:
        assert main(label_args(server, csv, tmp_path / "ref", tmp_path / "ref_cas", "--window", 4)) == 0
        reference = chat_bodies(server)
        server.requests.clear()
        # Stops after 6 live calls: mid-way through the second window of 4.
        assert main(label_args(server, csv, tmp_path / "out", tmp_path / "cas", "--window", 4, "--max-calls", 6)) == 2
        assert main(label_args(server, csv, tmp_path / "out", tmp_path / "cas", "--window", 4)) == 0
        assert set(chat_bodies(server)) == set(reference)
    assert labels_of(tmp_path / "out") == labels_of(tmp_path / "ref")


def rejecting(numbers: set[int], times: list[int]):
    """A fault hook refusing the conversations whose first message names one of `numbers`, `times[0]` times."""

    def fault(path, body):
        text = body.get("messages", [{}])[-1].get("content", "") if path.endswith("/chat/completions") else ""
        if times[0] > 0 and any(f"parcel {n} never" in text for n in numbers):
            times[0] -= 1
            return "http:400:maximum context length exceeded"
        return None
    return fault


def test_failed_share_exit_status_and_retry_failed(tmp_path, capsys):
    csv = dataset().save(tmp_path / "data.csv")
    out, cas = tmp_path / "out", tmp_path / "cas"
    with LoopbackServer() as server:
        server.fault_for = rejecting({1, 2, 4}, [3])
        assert main(label_args(server, csv, out, cas)) == 3  # 3 of 12 = 25% > 0.2
        last = capsys.readouterr().out.strip().splitlines()[-1]
        assert last.startswith("3 of 12 conversations failed") and "--retry-failed" in last
        stats = json.loads((out / "stats.json").read_text())
        assert {f["conversation_number"] for f in stats["failed_conversations"]} == {1, 2, 4}
        assert all(f["status"] == 400 and "context length" in f["reason"] for f in stats["failed_conversations"])
        # A plain rerun keeps the recorded failures (nothing is asked again) ...
        server.requests.clear()
        assert main(label_args(server, csv, out, cas, "--max-failed-share", 0.3)) == 0
        assert chat_bodies(server) == []
        # ... --retry-failed asks again, with fresh attempts (new requests, not cassette replays).
        assert main(label_args(server, csv, out, cas, "--retry-failed")) == 0
        retried = [json.loads(b) for b in chat_bodies(server)]
    assert len(retried) == 3 and all(b["temperature"] > 0 for b in retried)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["failures"] == 0 and stats["retried_failures"] == 3
    assert len(labels_of(out)) == dataset().n_messages


def test_budgets_hold_across_three_reruns(tmp_path, capsys):
    csv = dataset().save(tmp_path / "data.csv")
    out, cas = tmp_path / "out", tmp_path / "cas"
    with LoopbackServer() as server:
        assert main(label_args(server, csv, out, cas, "--max-calls", 5)) == 2
        assert "max_calls=5" in capsys.readouterr().err
        assert main(label_args(server, csv, out, cas, "--max-calls", 5)) == 2  # nothing left: no new call
        assert len(chat_bodies(server)) == 5
        assert main(label_args(server, csv, out, cas, "--max-calls", 9)) == 2
        assert len(chat_bodies(server)) == 9
        assert main(label_args(server, csv, out, cas, "--max-calls", 100)) == 0
        assert len(chat_bodies(server)) == 12
    ledger = json.loads((out / "usage.json").read_text())
    assert [r["live_calls"] for r in ledger["runs"]] == [5, 0, 4, 3]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["usage"]["live_calls"] == 12 and stats["usage"]["runs"] == 4
    assert stats["usage_this_run"]["live_calls"] == 3 and len(stats["runs"]) == 4
    assert "over 4 runs" in capsys.readouterr().out


def test_dollar_budget_counts_earlier_runs(tmp_path, capsys):
    csv = dataset().save(tmp_path / "data.csv")
    out, cas = tmp_path / "out", tmp_path / "cas"
    with LoopbackServer() as server:
        # gpt-4o has a list price, so its calls cost (estimated) dollars.
        args = ["label", "--data", str(csv), "--llm", f"openai-compatible:{server.url}:gpt-4o", "--embedder", "hashing",
                "--mode", "record", "--cassette", str(cas), "--out", str(out), "--no-progress"]
        assert main([*args, "--max-calls", "3"]) == 2
        spent = json.loads((out / "usage.json").read_text())["runs"][0]["dollars"]
        assert spent > 0
        capsys.readouterr()
        # A cap just above what was spent allows about one more call, counted over both runs.
        assert main([*args, "--max-dollars", str(spent * 1.2)]) == 2
        assert "max_dollars" in capsys.readouterr().err
        runs = json.loads((out / "usage.json").read_text())["runs"]
        assert runs[1]["live_calls"] == 1 and sum(r["dollars"] for r in runs) >= spent * 1.2


def test_plan_prints_the_need_and_makes_no_call(tmp_path, capsys):
    csv = dataset().save(tmp_path / "data.csv")
    with LoopbackServer() as server:
        args = ["label", "--data", str(csv), "--llm", f"openai-compatible:{server.url}:gpt-4o", "--embedder", "hashing",
                "--mode", "live", "--out", str(tmp_path / "out"), "--no-progress", "--max-retries", "1"]
        assert main([*args, "--plan"]) == 0
        assert server.requests == []
        text = capsys.readouterr().out
        assert "12 conversation(s)" in text and "12 expected, at most 24" in text and "no call was made" in text
        dollars = float(text.split("est. cost    $", 1)[1].split()[0])
        assert dollars > 0
        assert not (tmp_path / "out" / "progress.jsonl").exists()
        # After labeling 5 conversations, the plan covers the 7 left.
        assert main([*args, "--max-conversations", "5"]) == 0
        capsys.readouterr()
        assert main([*args, "--plan"]) == 0
        assert "7 conversation(s)" in capsys.readouterr().out


def test_endpoint_never_lands_in_run_json_unless_asked(tmp_path):
    csv = dataset(3).save(tmp_path / "data.csv")
    with LoopbackServer() as server:
        assert main(label_args(server, csv, tmp_path / "o1", tmp_path / "c1")) == 0
        assert json.loads((tmp_path / "c1" / "run.json").read_text())["llm"] == "openai-compatible:m"
        assert main(label_args(server, csv, tmp_path / "o2", tmp_path / "c2", "--save-endpoint")) == 0
        assert server.url in json.loads((tmp_path / "c2" / "run.json").read_text())["llm"]
    # The URL-less spec replays (no server needed) ...
    assert main(["label", "--data", str(csv), "--cassette", str(tmp_path / "c1"), "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 0


@pytest.mark.parametrize("torn", ["embeddings.npy", "embeddings.json", "progress.jsonl", "lm.jsonl"])
def test_torn_cache_files_are_rebuilt_or_truncated_never_a_traceback(tmp_path, torn):
    csv = dataset(6).save(tmp_path / "data.csv")
    out, cas = tmp_path / "out", tmp_path / "cas"
    with LoopbackServer() as server:
        assert main(label_args(server, csv, out, cas)) == 0
        reference = labels_of(out)
        path = (cas if torn == "lm.jsonl" else out) / torn
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - max(3, len(data) // 7)])  # a kill in the middle of a write
        (out / "labels.csv").unlink()
        assert main(label_args(server, csv, out, cas)) == 0
    assert labels_of(out) == reference


def test_an_unreadable_usage_ledger_is_one_clear_line(tmp_path, capsys):
    csv = dataset(3).save(tmp_path / "data.csv")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "usage.json").write_text("{not json")
    with LoopbackServer() as server:
        assert main(label_args(server, csv, tmp_path / "out", tmp_path / "cas")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "usage.json" in err[0] and "delete it" in err[0]
