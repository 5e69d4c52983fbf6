"""The bundled hybrid recording (simulated_runs/hybrid/): the demo's hybrid row replays it with zero live calls."""
from __future__ import annotations

import json

import pytest

from igft.cli import main
from igft.discover import label_with
from igft.pipeline.config import PipelineConfig
from igft.pipeline.notebook import load_data
from igft.pipeline.run import BUNDLED_LLM, _hybrid_models
from igft.resources import simulated_runs_dir

HYBRID = simulated_runs_dir() / "hybrid"


def test_the_recording_is_bundled_with_its_settings():
    for name in ("lm.jsonl", "embeddings.jsonl", "run.json"):
        assert (HYBRID / name).is_file(), name
    run = json.loads((HYBRID / "run.json").read_text())
    assert run["labeler"] == "hybrid" and run["llm"] == BUNDLED_LLM and run["data"] == "toy"


def test_the_demo_replays_the_hybrid_row_with_zero_live_calls():
    cfg = PipelineConfig()  # dummy mode, the bundled recordings
    models = _hybrid_models(cfg, shared_embedder=None)
    assert models is not None and models.recording == HYBRID
    dataset = load_data(cfg)
    first = label_with("hybrid", dataset, embedder=models.embedder, lm=models.lm, seed=cfg.seed, **models.options)
    usage = models.meter.snapshot()
    assert usage["live_calls"] == 0 and usage["live_embedded_texts"] == 0
    assert first.stats["calls"] == usage["calls"] == usage["cached_calls"] > 0
    assert len(first.labels) == dataset.n_messages  # every message labeled (names fall back to TF-IDF)
    assert first.stats["fallback_names"] <= first.stats["n_proposed_clusters"]
    again = _hybrid_models(cfg, shared_embedder=None)
    second = label_with("hybrid", dataset, embedder=again.embedder, lm=again.lm, seed=cfg.seed, **again.options)
    assert second.labels == first.labels  # replay is exact


def test_a_replay_miss_is_an_error_not_a_silent_fallback():
    cfg = PipelineConfig()
    models = _hybrid_models(cfg, shared_embedder=None)
    dataset = load_data(cfg)
    with pytest.raises(Exception, match="cassette"):
        # another naming budget sends other requests: they were never recorded
        label_with("hybrid", dataset, embedder=models.embedder, lm=models.lm, seed=cfg.seed,
                   **{**models.options, "max_tokens": 7})


def test_igft_label_replays_the_recording_too(tmp_path, capsys):
    options = json.loads((HYBRID / "run.json").read_text()).get("options", {})
    flags = [x for k, v in options.items() for x in ("--option", f"{k}={v}")]
    assert main(["label", "--cassette", str(HYBRID), "--out", str(tmp_path / "hyb"), "--no-progress", *flags]) == 0
    stats = json.loads((tmp_path / "hyb" / "stats.json").read_text())
    assert stats["labeler"] == "hybrid" and stats["usage"]["live_calls"] == 0


def test_the_pipelines_hybrid_recording_writes_the_same_run_json_as_igft_label(tmp_path):
    cfg = PipelineConfig(mode="record", cassette_dir=str(tmp_path))
    _hybrid_models(cfg, shared_embedder=None)  # builds the recording models; nothing is called yet
    written = json.loads((tmp_path / "hybrid" / "run.json").read_text())
    bundled = json.loads((HYBRID / "run.json").read_text())  # written by `igft label --mode record`
    assert set(written) == set(bundled)
    assert written["labeler"] == "hybrid" and written["data"] == "toy" and written["llm"] == cfg.llm
    assert written["gifa"] == {"seed": cfg.seed} and written["options"] == {}
