"""The paper's artifacts in the demo: found from a flag or $IGFT_PAPER_RUNS, downloaded or refused in one line."""
from __future__ import annotations

from pathlib import Path

import pytest

from igft.pipeline import paper
from igft.pipeline.paper import PaperRunsUnavailable, download_paper_repo, find_paper_runs

PAPER = Path(__file__).resolve().parents[1] / ".." / "shared" / "external" / "paper_runs"


def _fake_stage1(root: Path) -> Path:
    folder = root / "Stage 1"
    (folder / "rpo_toy").mkdir(parents=True)
    (folder / "toy_conversations.csv").write_text("conversation_number,conversation,index\n0,customer: hi,0\n")
    return folder


def test_find_paper_runs_from_flag_env_or_nothing(tmp_path, monkeypatch):
    for var in paper.ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    assert find_paper_runs(None) is None
    stage1 = _fake_stage1(tmp_path / "clone")
    assert find_paper_runs(tmp_path / "clone") == stage1  # a clone's root finds its `Stage 1/`
    monkeypatch.setenv("IGFT_PAPER_RUNS", str(stage1))
    assert find_paper_runs(None) == stage1
    monkeypatch.setenv("IGFT_PAPER_RUNS", str(tmp_path / "missing"))
    with pytest.raises(PaperRunsUnavailable) as err:
        find_paper_runs(None)
    assert "$IGFT_PAPER_RUNS=" in str(err.value) and "\n" not in str(err.value)


def test_download_without_network_says_so_in_one_line(tmp_path, monkeypatch):
    if paper.shutil.which("git") is None:
        pytest.skip("git not installed")
    monkeypatch.setattr(paper, "PAPER_REPO_URL", "http://127.0.0.1:9/unreachable.git")  # refused at once
    with pytest.raises(PaperRunsUnavailable) as err:
        download_paper_repo(tmp_path / "clone", timeout=60)
    message = str(err.value)
    assert "\n" not in message and "no network" in message and "--paper-runs" in message


def test_download_reuses_a_folder_that_already_holds_the_runs(tmp_path):
    stage1 = _fake_stage1(tmp_path / "clone")
    assert download_paper_repo(tmp_path / "clone") == stage1


@pytest.mark.slow
@pytest.mark.skipif(not (PAPER / "toy_conversations.csv").is_file(), reason="paper artifacts not in ../shared/external")
def test_paper_figures_rescore_gpt4o_gifa_and_the_four_searches():
    from igft.llm.base import HashingEmbedder

    figures = paper.paper_figures(PAPER, HashingEmbedder(), holdout_splits=3)
    gifa = figures["labelers"][0]
    assert gifa["labeler"].startswith("paper GIFA") and gifa["coverage"] == 1.0 and gifa["n_gold_intents"] == 121
    assert 0.3 < gifa["AMI"] < 0.5  # the recorded GPT-4o labels, exact alignment (the paper's join prints 0.417)
    assert set(figures["search"]) == {"random", "greedy", "see", "hyperband_see"}
    assert all(r["best_AMI_x_NCA"] > 0.3 for r in figures["search"].values())


@pytest.mark.slow
@pytest.mark.skipif(not (PAPER / "toy_conversations.csv").is_file(), reason="paper artifacts not in ../shared/external")
def test_demo_with_paper_runs_shows_the_replayed_hybrid_row_beside_the_paper(tmp_path):
    """Stage 1 of the demo with the paper's artifacts: the offline labelers (hybrid replayed) and the paper's GPT-4o."""
    from igft.pipeline import config_from_dict, run_pipeline, summarize

    cfg = config_from_dict({"paper_runs": str(PAPER), "search": {"backbones": []}, "stage2": {"enabled": False}})
    result = run_pipeline(cfg, tmp_path / "demo", progress=False)
    names = [row["labeler"] for row in result.summary["labelers"]]
    assert names[0] == "embeddings (automatic k)" and any(n.startswith("hybrid (replay") for n in names), names
    assert result.summary["hybrid"]["live_llm_calls"] == 0 and result.summary["hybrid"]["llm_calls"] > 0
    assert result.summary["paper"]["labelers"][0]["labeler"].startswith("paper GIFA")
    text = summarize(result)
    assert text.index("hybrid (replay") < text.index("The paper's recorded GPT-4o runs")
