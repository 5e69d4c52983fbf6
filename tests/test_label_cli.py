"""`igft label`: record then replay through cassettes, run.json defaults, resume, errors, the bundled replay."""
import json
import re

import pandas as pd

from igft.cli import main
from igft.data import Conversation, Dataset, Message
from igft.gifa import GifaConfig, label_dataset
from igft.llm.factory import build_embedder, build_lm
from igft.resources import simulated_runs_dir, toy_conversations_path

LINES = [
    [("customer", "hello my parcel never arrived", "report_missing_parcel"),
     ("assistant", "sorry, what is your order number", "ask_order_number"),
     ("customer", "it is 1234", "provide_order_number")],
    [("customer", "hi I was charged twice", "report_double_charge"),
     ("assistant", "sorry, what is your order number", "ask_order_number"),
     ("customer", "it is 999", "provide_order_number"),
     ("customer", "thanks, bye", "thank_and_close")],
]


def tiny_dataset(n=4):
    convs = [Conversation(c, tuple(Message(c, i, r, f"{t} #{c}" if i == 0 else t, g)
                                   for i, (r, t, g) in enumerate(LINES[c % 2]))) for c in range(n)]
    return Dataset(convs, "tiny")


def oracle(dataset):
    gold = {m.text: m.intent for m in dataset.messages}

    def answer(request):
        block = request.messages[-1]["content"].rsplit("Conversation (", 1)[1]
        return "\n".join(f"{i}. {gold[t]}" for i, _, t in re.findall(r"^(\d+)\. (customer|assistant): (.*)$", block, re.M))
    return answer


def run_cli(*argv):
    return main(["label", *map(str, argv), "--no-progress"])


def test_record_then_replay_gives_identical_labels_with_zero_live_calls(tmp_path, capsys):
    ds = tiny_dataset()
    csv = ds.save(tmp_path / "data.csv")
    cas = tmp_path / "cassette"
    lm = build_lm("scripted", mode="record", cassette=cas / "lm.jsonl", script=oracle(ds))
    emb = build_embedder("hashing", mode="record", cassette=cas / "embeddings.jsonl")
    recorded = label_dataset(ds, lm, emb, GifaConfig(), progress=False)
    assert lm.meter.live_calls == 4 and recorded.failures == []

    # Library replay: the scripted backend is never built; everything comes from the cassette.
    lm2 = build_lm("scripted", mode="replay", cassette=cas / "lm.jsonl")
    emb2 = build_embedder("hashing", mode="replay", cassette=cas / "embeddings.jsonl")
    replayed = label_dataset(ds, lm2, emb2, GifaConfig(), progress=False)
    assert replayed.labels == recorded.labels
    assert lm2.meter.live_calls == 0 and lm2.meter.cached_calls == 4
    assert replayed.stats["live_calls"] == 0 and replayed.stats["cached_calls"] == 4

    # CLI replay of the same cassette.
    out = tmp_path / "out"
    assert run_cli("--data", csv, "--llm", "scripted", "--embedder", "hashing", "--mode", "replay",
                   "--cassette", cas, "--out", out) == 0
    labels = pd.read_csv(out / "labels.csv")
    assert {(r.conversation_number, r.index): r.intent for r in labels.itertuples()} == recorded.labels
    stats = json.loads((out / "stats.json").read_text())
    assert stats["usage"]["live_calls"] == 0 and stats["usage"]["cached_calls"] == 4
    catalog = pd.read_csv(out / "catalog.csv")
    assert list(catalog.columns) == ["intent", "description", "examples", "count"]
    assert catalog["count"].sum() == ds.n_messages
    assert (out / "report.json").exists()
    assert f"labeled {ds.n_messages}/{ds.n_messages} messages" in capsys.readouterr().out

    # A changed prompt is a clear miss, exit code 2, one line naming the fix.
    assert run_cli("--data", csv, "--llm", "scripted", "--embedder", "hashing", "--mode", "replay",
                   "--cassette", cas, "--out", tmp_path / "out2", "--method", "example") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no cassette entry" in err and "--mode record" in err


def test_cli_record_writes_run_json_and_replay_reuses_its_settings(tmp_path, capsys):
    ds = tiny_dataset(3)
    csv = ds.save(tmp_path / "data.csv")
    cas = tmp_path / "cas"
    # The `scripted` spec answers "ok" to everything: every conversation fails, and is recorded as failed;
    # more than --max-failed-share (default 0.2) failed, so the exit status is 3.
    assert run_cli("--data", csv, "--llm", "scripted", "--embedder", "hashing", "--mode", "record", "--cassette", cas,
                   "--out", tmp_path / "rec", "--method", "example", "--top-k", "2", "--max-retries", "1") == 3
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("3 of 3 conversations failed")
    run = json.loads((cas / "run.json").read_text())
    assert run["gifa"]["method"] == "example" and run["gifa"]["top_k"] == 2 and run["llm"] == "scripted"
    rec_stats = json.loads((tmp_path / "rec" / "stats.json").read_text())
    assert rec_stats["failures"] == 3 and rec_stats["calls"] == 6 and rec_stats["retries"] == 3
    assert all("no usable answer in 2 attempt(s)" in f["reason"] for f in rec_stats["failed_conversations"])
    capsys.readouterr()
    # Replay with no model flags: run.json supplies llm, embedder and the GIFA settings.
    assert run_cli("--data", csv, "--cassette", cas, "--out", tmp_path / "rep", "--max-failed-share", "1") == 0
    rep_stats = json.loads((tmp_path / "rep" / "stats.json").read_text())
    assert rep_stats["usage"]["live_calls"] == 0 and rep_stats["calls"] == 6 and rep_stats["failures"] == 3
    assert "failed conversation 0" in capsys.readouterr().out


def test_cli_resumes_from_its_output_folder(tmp_path):
    ds = tiny_dataset(5)
    csv = ds.save(tmp_path / "data.csv")
    out = tmp_path / "out"
    common = ("--data", csv, "--llm", "scripted", "--embedder", "hashing", "--mode", "live", "--out", out,
              "--max-retries", "0", "--max-failed-share", "1")  # `scripted` answers "ok": every conversation fails
    assert run_cli(*common, "--max-conversations", "2") == 0
    assert run_cli(*common) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["resumed_conversations"] == 2 and stats["calls_this_session"] == 3 and stats["calls"] == 5
    assert run_cli(*common, "--top-k", "1") == 2  # other settings: refuse to mix
    assert run_cli(*common, "--top-k", "1", "--overwrite") == 0
    assert json.loads((out / "stats.json").read_text())["calls_this_session"] == 5


def test_cli_embeddings_labeler(tmp_path):
    ds = tiny_dataset(4)
    csv = ds.save(tmp_path / "data.csv")
    out = tmp_path / "out"
    assert run_cli("--data", csv, "--labeler", "embeddings", "--embedder", "hashing", "--mode", "live", "--out", out) == 0
    labels = pd.read_csv(out / "labels.csv")
    assert len(labels) == ds.n_messages and labels["intent"].notna().all()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert run_cli("--data", tmp_path / "missing.csv", "--llm", "scripted", "--embedder", "hashing",
                   "--out", tmp_path / "o") == 2
    assert run_cli("--mode", "replay", "--cassette", tmp_path / "nothing", "--out", tmp_path / "o") == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 2
    assert "does not exist" in errors[0] and "no cassette at" in errors[1]


def test_bundled_recorded_run_replays_with_zero_live_calls(tmp_path, capsys):
    """`igft label --mode replay --out DIR`: toy data + simulated_runs/gifa, no model, no network."""
    assert (simulated_runs_dir() / "gifa" / "lm.jsonl").exists(), "the recorded cassette is missing"
    out = tmp_path / "out"
    code = main(["label", "--mode", "replay", "--out", str(out), "--no-progress"])
    stats = json.loads((out / "stats.json").read_text())
    # Above --max-failed-share (0.2) failed conversations the exit status is 3 (this recording has none failed).
    assert code == (3 if stats["failures"] > 0.2 * stats["conversations"] else 0)
    run = json.loads((simulated_runs_dir() / "gifa" / "run.json").read_text())
    toy_conversations = pd.read_csv(toy_conversations_path())["conversation_number"].nunique()
    assert stats["usage"]["live_calls"] == 0 and stats["usage"]["calls"] > 0
    assert stats["usage"]["live_embedded_texts"] == 0
    assert stats["conversations"] == toy_conversations and run["llm"] == "local:igft-labeler"
    labeled = {c for c, _ in map(tuple, pd.read_csv(out / "labels.csv")[["conversation_number", "index"]].values)}
    failed = {f["conversation_number"] for f in stats["failed_conversations"]}
    assert len(labeled) + len(failed) == toy_conversations and not labeled & failed  # none dropped
    report = json.loads((out / "report.json").read_text())
    assert "AMI" in report and report["n_messages"] > 0
    assert "AMI" in capsys.readouterr().out
    # The replay reproduces the outputs written when the cassette was recorded.
    recorded = simulated_runs_dir() / "gifa" / "recorded_outputs"
    assert (out / "labels.csv").read_text() == (recorded / "labels.csv").read_text()
    assert (out / "catalog.csv").read_text() == (recorded / "catalog.csv").read_text()
    recorded_stats = json.loads((recorded / "stats.json").read_text())
    assert stats["failed_conversations"] == recorded_stats["failed_conversations"]
    assert stats["calls"] == recorded_stats["calls"] == recorded_stats["usage"]["live_calls"]


def test_overwrite_starts_a_new_budget_job_and_keeps_the_old_entries(tmp_path):
    ds = tiny_dataset(4)
    csv = ds.save(tmp_path / "data.csv")
    out = tmp_path / "out"
    common = ("--data", csv, "--llm", "scripted", "--embedder", "hashing", "--mode", "live", "--out", out,
              "--max-retries", "0", "--max-failed-share", "1", "--max-calls", "2")
    assert run_cli(*common) == 2  # 4 conversations need 4 calls: stopped (exit 2) after 2, the rest kept
    assert run_cli(*common) == 2  # same job: the cap of 2 live calls is spent, no call is made
    runs = json.loads((out / "usage.json").read_text())["runs"]
    assert [(r["job"], r["live_calls"]) for r in runs] == [(1, 2), (1, 0)]
    # --overwrite starts over, as `igft optimize --no-resume` does: a new job whose count starts at zero
    assert run_cli(*common, "--overwrite") == 2
    runs = json.loads((out / "usage.json").read_text())["runs"]
    assert [(r["job"], r["live_calls"]) for r in runs] == [(1, 2), (1, 0), (2, 2)]
