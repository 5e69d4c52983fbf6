"""`run_pipeline`: every step in order, each writing its artifacts under one output folder.

out/
  config.yaml              the resolved PipelineConfig
  stage1/                  labels.csv, catalog.csv, stats.json, report.json, labelers.csv
  search/<backbone>/       history.jsonl, result.json, plots;  search/comparison.png
  stage2/                  finetune/ (adapter/, config.yaml, train_log.jsonl, loss.png), predictions.jsonl, scores.json
  summary.json             the figures printed at the end

Every step writes as it goes; a rerun of the same command resumes where a killed run stopped
(labeling progress, search histories and prediction files are append-only).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from igft.pipeline.config import PipelineConfig

logger = logging.getLogger(__name__)


@dataclass
class PipelineResult:
    out_dir: Path
    summary: dict[str, Any]
    labelers: pd.DataFrame | None = None
    searches: dict[str, Any] = field(default_factory=dict)
    stage2: Any = None


def _stage2_dataset(cfg: PipelineConfig, stage1_run):
    """Stage 2 trains on gold intents, or on Stage 1's predicted labels (labels_from: predicted)."""
    if cfg.stage2.labels_from == "predicted":
        labeled = stage1_run.result.labeled(stage1_run.dataset)
        done = [c for c in labeled.conversations if all(m.intent for m in c.messages)]
        from igft.data import Dataset
        return Dataset(done, labeled.source)
    return stage1_run.dataset


def run_pipeline(cfg: PipelineConfig, out_dir: str | Path, progress: bool = True) -> PipelineResult:
    """Run Stage 1 (labels, labeler comparison, prompt search) and Stage 2 (fine-tune, generate, score)."""
    from igft.pipeline.search import run_backbones
    from igft.pipeline.stage1 import compare_labelers, run_stage1
    from igft.pipeline.stage2 import run_stage2

    cfg.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    timings: dict[str, float] = {}
    summary: dict[str, Any] = {"mode": cfg.mode}

    start = time.perf_counter()
    logger.info("stage 1: labeling with %s", cfg.stage1.labeler)
    stage1 = run_stage1(cfg, out / "stage1", progress=progress)
    timings["stage1_labeling"] = time.perf_counter() - start
    summary["stage1"] = {"labeler": stage1.settings["labeler"], "llm": stage1.settings["llm"],
                         "messages_labeled": len(stage1.result.labels), "messages": stage1.dataset.n_messages,
                         "failed_conversations": len(stage1.result.failures), "intents": len(stage1.result.catalog)}
    if "report" in stage1.paths:
        report = json.loads(Path(stage1.paths["report"]).read_text())
        summary["stage1"].update({k: report[k] for k in ("AMI", "NCA", "AMI_x_NCA", "accuracy_hungarian")})

    labelers = None
    if cfg.stage1.compare_labelers and stage1.dataset.has_gold:
        start = time.perf_counter()
        from igft.llm.factory import build_embedder
        # The comparison embeds texts the recording never saw (message + context), so in dummy mode it
        # uses the bundled MiniLM live: it is offline and deterministic.
        embedder = build_embedder("local:minilm" if cfg.mode == "replay" else cfg.embedder, mode="live")
        labelers = compare_labelers(stage1.dataset, embedder, {f"gifa ({cfg.mode})": stage1.result}, seed=cfg.seed)
        labelers.to_csv(out / "stage1" / "labelers.csv", index=False)
        summary["labelers"] = labelers.round(4).to_dict(orient="records")
        timings["stage1_labelers"] = time.perf_counter() - start

    searches = {}
    if cfg.search.backbones:
        start = time.perf_counter()
        searches = run_backbones(cfg, out / "search", progress=progress)
        summary["search"] = {name: r.summary() for name, r in searches.items()}
        timings["search"] = time.perf_counter() - start

    stage2 = None
    if cfg.stage2.enabled:
        start = time.perf_counter()
        stage2 = run_stage2(cfg, _stage2_dataset(cfg, stage1), out / "stage2")
        summary["stage2"] = {k: stage2.scores.get(k) for k in
                             ("n", "bleu", "rougeL", "bertscore_f1", "embedding_cosine", "intent_f1", "n_malformed")
                             if k in stage2.scores}
        losses = [r["loss"] for r in stage2.train_log if "loss" in r]
        if losses:
            summary["stage2"]["train_loss_first_last"] = [losses[0], losses[-1]]
        timings["stage2"] = time.perf_counter() - start

    summary["seconds"] = {k: round(v, 1) for k, v in timings.items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    return PipelineResult(out, summary, labelers, searches, stage2)


def summarize(result: PipelineResult) -> str:
    """A short human summary of a pipeline run (what `igft demo` prints)."""
    s = result.summary
    lines = [f"igft pipeline [{s['mode']} mode] -> {result.out_dir}"]
    if s["mode"] == "replay" and s["stage1"].get("llm") == "local:smollm2":
        lines.append("  (dummy mode replays recordings made with SmolLM2-135M, which cannot label intents: the figures "
                     "exercise the machinery, not the method; see simulated_runs/README.md)")
    st1 = s["stage1"]
    line = (f"  stage 1  {st1['labeler']} ({st1['llm']}): {st1['messages_labeled']}/{st1['messages']} messages labeled, "
            f"{st1['failed_conversations']} conversations failed, {st1['intents']} intents")
    if "AMI" in st1:
        line += f"; AMI {st1['AMI']:.3f}, NCA {st1['NCA']:.3f}, AMI x NCA {st1['AMI_x_NCA']:.3f}"
    lines.append(line)
    if result.labelers is not None:
        lines.append("  labelers (AMI x NCA / intents):  " + ";  ".join(
            f"{r.labeler} {r.AMI_x_NCA:.3f} / {r.n_intents}" for r in result.labelers.itertuples()))
    for name, info in s.get("search", {}).items():
        best = info.get("best_objective")
        lines.append(f"  search   {name}: {info.get('trials')} trials, {info.get('llm_calls')} LLM calls, best AMI x NCA "
                     f"{'n/a' if best is None else f'{best:.3f}'}")
    if "stage2" in s:
        st2 = s["stage2"]
        parts = [f"{k} {st2[k]:.3f}" for k in ("bleu", "rougeL", "bertscore_f1", "intent_f1") if isinstance(st2.get(k), float)]
        loss = st2.get("train_loss_first_last")
        lines.append(f"  stage 2  {st2.get('n')} held-out replies: " + ", ".join(parts)
                     + (f"; train loss {loss[0]:.3f} -> {loss[1]:.3f}" if loss else ""))
    lines.append("  seconds: " + ", ".join(f"{k} {v}" for k, v in s["seconds"].items()))
    return "\n".join(lines)
