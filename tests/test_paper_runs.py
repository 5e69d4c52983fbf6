"""Importing the paper's recorded runs (third-party, read from ../shared/external; skipped when absent)."""
from __future__ import annotations

import json
import re

from igft.cli import main
from igft.optimizers.paper_runs import best_objectives, import_paper_runs


def readme_bests(readme_text: str) -> dict[str, float]:
    line = re.search(r"Best AMI x NCA: (.*)", readme_text).group(1)
    names = {"random": "random", "greedy": "greedy", "SEE": "see", "Hyperband-SEE last round": "hyperband_see"}
    return {names[m.group(1).strip()]: float(m.group(2)) for m in re.finditer(r"([A-Za-z\- ]+?) (0\.\d+)", line.replace(",", ""))
            if m.group(1).strip() in names} or {}


def test_paper_runs_json_reproduces_the_published_bests(paper_runs, capsys):
    expected = readme_bests((paper_runs.parent / "README.md").read_text())
    assert set(expected) == {"random", "greedy", "see", "hyperband_see"}
    assert main(["paper-runs", str(paper_runs), "--gold", str(paper_runs / "toy_conversations.csv"), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert abs(got[name] - value) < 0.01, (name, got[name], value)


def test_imported_histories_have_lineage_reports_and_hyperband_rounds(paper_runs):
    histories = import_paper_runs(paper_runs, paper_runs / "toy_conversations.csv")
    assert [len(histories[k]) for k in ("random", "greedy", "see")] == [10, 10, 15]
    see = histories["see"].trials
    assert [t.phase for t in see[:5]] == ["lamarckian"] * 5
    assert all(t.parent_ids for t in see[5:])
    for t in see:
        assert {"AMI", "NCA", "ARI", "AMI_x_NCA"} <= set(t.report) and t.instruction
        # The recomputed objective agrees with what the paper's run wrote down.
        assert abs(t.objective - t.meta["paper_objective"]) < 0.01
    hb = histories["hyperband_see"].trials
    assert {(t.meta["bracket"], t.meta["round"]) for t in hb} == {(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (3, 1)}
    assert histories["hyperband_see"].to_frame()["r"].max() == 16


def test_exact_alignment_scores_every_message_once(paper_runs):
    exact = best_objectives(import_paper_runs(paper_runs, paper_runs / "toy_conversations.csv", alignment="exact"))
    paper = best_objectives(import_paper_runs(paper_runs, paper_runs / "toy_conversations.csv"))
    for name in exact:
        # One row per message removes the duplicated joins; the scores move, but not by much.
        assert exact[name] != paper[name] and abs(exact[name] - paper[name]) < 0.05


def test_holdout_rejudges_each_backbone_out_of_sample(paper_runs, capsys, tmp_path):
    gold = str(paper_runs / "toy_conversations.csv")
    png = tmp_path / "holdout.png"
    assert main(["paper-runs", str(paper_runs), "--gold", gold, "--holdout", "40", "--json", "--png", str(png)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert set(got) == {"random", "greedy", "see", "hyperband_see"}
    for name, r in got.items():
        assert {"test_gain_mean", "test_gain_sd", "share_positive"} <= set(r)
        assert 0 <= r["share_positive"] <= 1 and r["test_gain_sd"] >= 0 and r["n_splits"] == 40
        assert r["validation_size"] >= 4 and r["test_size"] >= 4
    # Hyperband-SEE candidates are its trials at the largest r only (16 conversations, its last rounds)
    assert got["hyperband_see"]["n_conversations"] == 16
    assert png.stat().st_size > 1000
    # the same seed gives the same figures; another seed other splits
    assert main(["paper-runs", str(paper_runs), "--gold", gold, "--holdout", "40", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == got
    assert main(["paper-runs", str(paper_runs), "--gold", gold, "--holdout", "40", "--json", "--seed", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["random"]["test_gain_mean"] != got["random"]["test_gain_mean"]


def test_path_without_gold_and_download_of_a_folder_holding_the_runs_read_its_toy_gold(paper_runs, capsys):
    assert main(["paper-runs", str(paper_runs), "--gold", str(paper_runs / "toy_conversations.csv"), "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)
    assert main(["paper-runs", str(paper_runs), "--json"]) == 0  # --gold defaults to the folder's toy_conversations.csv
    assert json.loads(capsys.readouterr().out) == expected
    # --download DIR where DIR already holds the runs: nothing is cloned, DIR is read as PATH would be
    assert main(["paper-runs", "--download", str(paper_runs), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == expected


def _one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in captured.err + captured.out, captured.err
    return err


def test_paper_runs_needs_path_or_download_not_both(tmp_path, capsys):
    assert main(["paper-runs", "--json"]) == 2
    assert "pass PATH, or --download DIR" in _one_line_error(capsys)
    assert main(["paper-runs", str(tmp_path), "--download", str(tmp_path / "clone")]) == 2
    assert "either PATH or --download DIR, not both" in _one_line_error(capsys)
    assert main(["paper-runs", str(tmp_path)]) == 2  # no --gold and no paper layout there
    assert "PATH=" in _one_line_error(capsys)


def test_download_without_network_exits_2_in_one_line(tmp_path, capsys, monkeypatch):
    import pytest

    from igft.pipeline import paper

    if paper.shutil.which("git") is None:
        pytest.skip("git not installed")
    monkeypatch.setattr(paper, "PAPER_REPO_URL", "http://127.0.0.1:9/unreachable.git")  # refused at once, as offline
    assert main(["paper-runs", "--download", str(tmp_path / "clone"), "--json"]) == 2
    err = _one_line_error(capsys)
    assert "no network" in err and "unreachable.git" in err
    assert capsys.readouterr().out == ""
