"""`igft evaluate`: JSON output, labels.csv and the paper's GIFA output format, and the paper's figures."""
import json
import re
import subprocess
import sys

import pandas as pd
import pytest
from sklearn import metrics as skm

from igft.cli import main
from igft.data import load_conversations
from igft.predictions import align_gifa_output, load_predictions
from igft.resources import toy_conversations_path

ISSUE_KEYS = {"AMI", "NCA", "purity", "ARI", "NMI", "FMI", "pairwise_precision", "pairwise_recall", "pairwise_F1",
              "accuracy_hungarian", "false_splits", "false_merges", "n_messages", "n_gold_intents", "n_pred_intents"}


def run_json(capsys, *args):
    assert main(["evaluate", *args, "--json"]) == 0
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1
    return json.loads(out)


def gifa_frame(dataset, labels, numbers):
    """The paper's GIFA output layout for the given conversations, in the given order."""
    rows = []
    for number in numbers:
        for m in dataset.subset([number]).conversations[0].messages:
            rows.append({"index": m.index, "intent": labels[m.key], "count": m.index, "messages": m.line})
    return pd.DataFrame(rows, columns=["index", "intent", "count", "messages"])


def test_self_evaluation_is_perfect(capsys):
    toy = toy_conversations_path()
    report = run_json(capsys, "--gold", str(toy), "--pred", str(toy))
    assert ISSUE_KEYS <= set(report) and {"AMI_x_NCA", "n_missing"} <= set(report)
    assert report["AMI"] == pytest.approx(1.0) and report["accuracy_hungarian"] == 1.0 and report["n_missing"] == 0
    assert report["n_messages"] == load_conversations(toy).n_messages


def test_labels_csv_with_missing_rows_counts_them_in_one_cluster(tmp_path, capsys):
    toy = load_conversations(toy_conversations_path())
    frame = toy.to_frame()
    frame["intent"] = frame["intent"].map(lambda s: s.split("_")[0])  # a coarser labeling
    dropped = frame[frame["conversation_number"] != toy.numbers[0]]
    dropped.to_csv(tmp_path / "labels.csv", index=False)
    report = run_json(capsys, "--gold", str(toy_conversations_path()), "--pred", str(tmp_path / "labels.csv"))
    assert report["n_missing"] == len(toy.conversations[0])
    assert report["coverage"] == pytest.approx(1 - len(toy.conversations[0]) / toy.n_messages)
    gold = [m.intent for m in toy.messages]
    pred = [m.intent.split("_")[0] if m.conversation_number != toy.numbers[0] else "__unlabeled__" for m in toy.messages]
    assert report["AMI"] == pytest.approx(skm.adjusted_mutual_info_score(gold, pred), abs=1e-9)
    singleton = run_json(capsys, "--gold", str(toy_conversations_path()), "--pred", str(tmp_path / "labels.csv"),
                         "--missing", "singleton")
    pred = [p if p != "__unlabeled__" else f"missing_{m.key}" for p, m in zip(pred, toy.messages)]
    assert singleton["AMI"] == pytest.approx(skm.adjusted_mutual_info_score(gold, pred), abs=1e-9)


def test_text_output_has_table_and_examples(tmp_path, capsys):
    toy = load_conversations(toy_conversations_path())
    coarse = toy.to_frame().assign(intent=lambda f: f["intent"].map(lambda s: s.split("_")[0]))
    coarse.to_csv(tmp_path / "labels.csv", index=False)
    assert main(["evaluate", "--gold", str(toy_conversations_path()), "--pred", str(tmp_path / "labels.csv")]) == 0
    out = capsys.readouterr().out
    assert "AMI" in out and "accuracy_hungarian" in out
    assert "- false_merge:" in out  # coarse labels merge intents: examples are printed


def test_gifa_alignment_handles_order_missing_blocks_and_text_mismatch():
    toy = load_conversations(toy_conversations_path())
    labels = {m.key: f"p_{m.intent}" for m in toy.messages}
    numbers = toy.numbers
    order = [numbers[3], numbers[1], numbers[0]] + numbers[5:]   # shuffled, conversations 2 and 4 absent
    frame = gifa_frame(toy, labels, order)
    # a row whose text was altered cannot be aligned; one whose position is wrong is found by text
    altered = frame.index[(frame["count"] == 2)][0]
    frame.loc[altered, "messages"] = "customer: something never said"
    result = align_gifa_output(frame, toy)
    assert result.matched == [(b, n) for b, n in enumerate(order)]
    assert result.unaligned_rows == 1
    expected = {m.key: labels[m.key] for n in order for m in toy.subset([n]).conversations[0].messages}
    del expected[(order[0], 2)]
    assert result.labels == expected
    # extra whitespace and a different role spelling still align
    frame2 = gifa_frame(toy, labels, numbers[:2])
    frame2["messages"] = frame2["messages"].str.replace("customer: ", "user:   ", regex=False)
    assert align_gifa_output(frame2, toy).labels == {k: v for k, v in labels.items() if k[0] in numbers[:2]}


def test_gifa_alignment_recovers_a_position_shift(tmp_path):
    toy = load_conversations(toy_conversations_path())
    labels = {m.key: f"p_{m.intent}" for m in toy.messages}
    frame = gifa_frame(toy, labels, [toy.numbers[0]])
    # the labeler skipped message 0: rows 1.. are numbered 0.., so counts are off by one
    shifted = frame.iloc[1:].copy()
    shifted["count"] = range(len(shifted))
    result = align_gifa_output(shifted.reset_index(drop=True), toy)
    first = toy.conversations[0]
    assert result.labels == {m.key: labels[m.key] for m in first.messages[1:]}


def test_load_predictions_detects_the_gifa_layout(tmp_path):
    toy = load_conversations(toy_conversations_path())
    labels = {m.key: f"p_{m.intent}" for m in toy.messages}
    path = tmp_path / "gifa.csv"
    gifa_frame(toy, labels, toy.numbers).to_csv(path, index=False)
    assert load_predictions(path, toy) == labels


# ------------------------------------------------------------------ the paper's published artifacts

def readme_figures(paper_runs):
    """AMI / NCA / purity as /work/shared/external/README.md states them (parsed, not copied)."""
    text = (paper_runs.parent / "README.md").read_text(encoding="utf-8")
    found = dict(re.findall(r"\b(AMI|NCA|purity) (0\.\d+)", text))
    assert set(found) == {"AMI", "NCA", "purity"}, text
    return {k: float(v) for k, v in found.items()}


def test_paper_figures_exact_alignment(paper_runs):
    gold_csv, pred_csv = paper_runs / "toy_conversations.csv", paper_runs / "toy_intents.csv"
    done = subprocess.run([sys.executable, "-m", "igft", "evaluate", "--gold", str(gold_csv), "--pred", str(pred_csv), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert ISSUE_KEYS <= set(report)
    # independent check: every GIFA row sits at the same file row as its gold message (verified on the
    # text), so the exact alignment must equal row-by-row scoring with scikit-learn
    gold, pred = pd.read_csv(gold_csv), pd.read_csv(pred_csv)
    assert (gold["conversation"] == pred["messages"]).all() and (gold["index"] == pred["count"]).all()
    assert report["n_messages"] == len(gold) and report["n_missing"] == 0
    assert report["AMI"] == pytest.approx(skm.adjusted_mutual_info_score(gold["intent"], pred["intent"]), abs=1e-9)
    assert report["ARI"] == pytest.approx(skm.adjusted_rand_score(gold["intent"], pred["intent"]), abs=1e-12)
    assert report["n_gold_intents"] == gold["intent"].nunique() and report["n_pred_intents"] == pred["intent"].nunique()
    published = readme_figures(paper_runs)
    assert report["NCA"] == pytest.approx(published["NCA"], abs=0.01)
    assert report["purity"] == pytest.approx(published["purity"], abs=0.01)
    # AMI on the exact 239 messages is lower than the published figure, which counts 6 duplicated
    # rows of the paper's text+index join (see test_paper_figures_paper_merge); the gap is real
    assert report["AMI"] < published["AMI"]


def test_paper_figures_paper_merge(paper_runs, capsys):
    report = run_json(capsys, "--gold", str(paper_runs / "toy_conversations.csv"),
                      "--pred", str(paper_runs / "toy_intents.csv"), "--align", "paper-merge")
    published = readme_figures(paper_runs)
    for key in ("AMI", "NCA", "purity"):
        assert report[key] == pytest.approx(published[key], abs=1e-4), key
    assert report["n_messages"] > 239  # the join's duplicated rows
