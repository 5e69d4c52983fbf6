"""`run_pipeline`: every step in order, each writing its artifacts under one output folder.

out/
  config.yaml              the resolved PipelineConfig
  stage1/                  labels.csv, catalog.csv, stats.json, report.json, labelers.csv, labelers.png
  paper/                   figures.json, labelers.csv (only with the paper's artifacts, --paper-runs)
  search/<backbone>/       history.jsonl, result.json, plots;  search/comparison.png
  stage2/                  finetune/ (adapter/, config.yaml, train_log.jsonl, loss.png), predictions.jsonl,
                           scores.json, base_predictions.jsonl, base_scores.json, base_vs_finetuned.png
  summary.json             the figures printed at the end

The story it tells, in order: the labelers side by side on gold (what works offline first), the
paper's own GPT-4o runs when present, the GIFA and prompt-search replays (labelled as exercising the
machinery when they were recorded with the bundled 135M model), then Stage 2's fine-tuned model
beside its base model. Every step writes as it goes; a rerun of the same command resumes where a
killed run stopped (labeling progress, search histories and prediction files are append-only).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import yaml

from igft.pipeline.config import PipelineConfig
from igft.pipeline.phases import PhaseTimer

logger = logging.getLogger(__name__)

# The bundled hybrid recording and the searches' instructions are this model's: figures from them
# exercise the machinery only. The bundled GIFA recordings are the offline labeler's (issue 15).
BUNDLED_LLM = "local:smollm2"
LABELER_LLM = "local:igft-labeler"
MACHINERY_NOTE = ("recorded with SmolLM2-135M, which cannot label intents: these figures exercise the machinery "
                  "(prompts, parsing, retries, search loops, replay), not the method")
SEARCH_MACHINERY_NOTE = ("the searches' instructions were written by SmolLM2-135M, which cannot write useful ones: "
                         "their results exercise the search machinery, not the method")
GIFA_NAMES = {BUNDLED_LLM: "SmolLM2-135M: machinery only", LABELER_LLM: "igft-labeler, SGD-trained"}


@dataclass
class PipelineResult:
    out_dir: Path
    summary: dict[str, Any]
    labelers: pd.DataFrame | None = None
    searches: dict[str, Any] = field(default_factory=dict)
    stage2: Any = None
    paper: dict[str, Any] | None = None


def _stage2_dataset(cfg: PipelineConfig, stage1_run):
    """Stage 2 trains on gold intents, or on Stage 1's predicted labels (labels_from: predicted)."""
    if cfg.stage2.labels_from == "predicted":
        from igft.data import Dataset

        labeled = stage1_run.result.labeled(stage1_run.dataset)
        done = [c for c in labeled.conversations if all(m.intent for m in c.messages)]
        return Dataset(done, labeled.source)
    return stage1_run.dataset


@dataclass
class HybridModels:
    """What the hybrid labeler row runs with: its LLM, its embedder, its options and one meter for both."""
    lm: Any
    embedder: Any
    options: dict[str, Any]
    meter: Any
    recording: Path | None  # the cassette folder replayed or recorded into, if any


def _hybrid_models(cfg: PipelineConfig, shared_embedder) -> HybridModels | None:
    """The hybrid row's models: a recording (cfg.cassette_dir/hybrid or the bundled simulated_runs/hybrid)
    replayed in dummy mode, else the configured LLM (recorded into cassette_dir/hybrid in record mode).

    A replay takes its embedder and options from the recording's run.json and replays the recorded
    vectors too, so the clusters (and hence the naming prompts) are exactly the recorded ones on any
    machine: a live MiniLM could round a vector differently and miss the cassette. None when dummy mode
    has nothing recorded (the row is left out and the summary says why)."""
    from igft.gifa.run import TOY_DATA, read_run_file, write_label_run_file
    from igft.llm.factory import build_embedder, build_lm
    from igft.llm.usage import UsageMeter
    from igft.pipeline.stage1 import cassette_for

    cassette = cassette_for(cfg, "hybrid")
    folder = Path(cassette) if cassette else None
    meter = UsageMeter()
    if cfg.mode == "replay":
        if folder is None or not (folder / "lm.jsonl").is_file():
            return None
        recorded = read_run_file(folder / "run.json")
        embedder = (build_embedder(recorded.get("embedder", "local:minilm"), mode="replay",
                                   cassette=folder / "embeddings.jsonl", usage=meter)
                    if (folder / "embeddings.jsonl").is_file() else shared_embedder)
        lm = build_lm(recorded.get("llm", cfg.llm), mode="replay", cassette=folder / "lm.jsonl", usage=meter)
        return HybridModels(lm, embedder, dict(recorded.get("options", {})), meter, folder)
    lm = build_lm(cfg.llm, mode=cfg.mode, cassette=folder / "lm.jsonl" if folder else None, usage=meter)
    embedder = shared_embedder
    if folder is not None:
        embedder = build_embedder(cfg.embedder, mode=cfg.mode, cassette=folder / "embeddings.jsonl", usage=meter)
        if cfg.mode == "record":
            write_label_run_file(folder / "run.json", labeler="hybrid", llm=cfg.llm, embedder=cfg.embedder,
                                 data=cfg.data or TOY_DATA, seed=cfg.seed)
    return HybridModels(lm, embedder, {}, meter, folder)


def _compare_labelers(cfg: PipelineConfig, stage1, out: Path, summary: dict) -> pd.DataFrame:
    from igft.llm.factory import build_embedder
    from igft.pipeline.plots import plot_labelers
    from igft.pipeline.stage1 import compare_labelers

    # The comparison embeds texts the GIFA recording never saw (message + context), so in dummy mode
    # the embedding rows use the bundled MiniLM live: it is offline and deterministic.
    embedder = build_embedder("local:minilm" if cfg.mode == "replay" else cfg.embedder, mode="live")
    hybrid = _hybrid_models(cfg, embedder)
    model = GIFA_NAMES.get(stage1.settings["llm"])
    gifa_name = f"gifa ({cfg.mode}{', ' + model if model else ''})"
    table, results = compare_labelers(
        stage1.dataset, embedder, {gifa_name: stage1.result}, seed=cfg.seed,
        lm=hybrid.lm if hybrid else None, hybrid_embedder=hybrid.embedder if hybrid else None,
        hybrid_options=hybrid.options if hybrid else None, return_results=True,
        hybrid_name=(f"hybrid ({cfg.mode}, SmolLM2-135M + TF-IDF names)"
                     if hybrid and hybrid.lm.model == BUNDLED_LLM else None))
    table.to_csv(out / "stage1" / "labelers.csv", index=False)
    plot_labelers(table, out / "stage1" / "labelers.png",
                  title=f"labelers on {Path(stage1.dataset.source).name} against its gold intents")
    summary["labelers"] = table.round(4).to_dict(orient="records")
    summary["labelers_data"] = {"source": Path(stage1.dataset.source).name, "conversations": len(stage1.dataset),
                                "messages": stage1.dataset.n_messages,
                                "gold_intents": len({m.intent for m in stage1.dataset.messages})}
    if hybrid is None:
        summary["labelers_note"] = ("hybrid labeler not shown: it needs an LLM that names intents and no hybrid "
                                    "recording is bundled; run `igft label --labeler hybrid --llm SPEC`")
    else:
        stats = next(r.stats for name, r in results.items() if name.startswith("hybrid"))
        usage = hybrid.meter.snapshot()
        summary["hybrid"] = {"mode": cfg.mode, "recording": str(hybrid.recording) if hybrid.recording else None,
                             "llm": stats.get("lm"), "llm_calls": stats.get("calls"),
                             "live_llm_calls": usage.get("live_calls"),
                             "live_embedded_texts": usage.get("live_embedded_texts"),
                             "proposed_clusters": stats.get("n_proposed_clusters"),
                             "fallback_names": stats.get("fallback_names"), "splits": stats.get("splits"),
                             "merges": stats.get("merges")}
        if stats.get("lm") == BUNDLED_LLM:
            summary["labelers_note"] = (
                f"hybrid {cfg.mode}, machinery only: SmolLM2-135M's reply parsed as a name for "
                f"{stats['n_proposed_clusters'] - stats['fallback_names']} of {stats['n_proposed_clusters']} clusters, "
                f"the rest keep their TF-IDF names; {stats['merges']} merges")
    return table


def _paper(cfg: PipelineConfig, folder: Path | None, out: Path, summary: dict) -> dict[str, Any] | None:
    if folder is None:
        return None
    from igft.llm.factory import build_embedder
    from igft.pipeline.paper import paper_figures

    logger.info("the paper's recorded runs: %s", folder)
    figures = paper_figures(folder, build_embedder("local:minilm", mode="live"), seed=cfg.seed)
    (out / "paper").mkdir(parents=True, exist_ok=True)
    (out / "paper" / "figures.json").write_text(json.dumps(figures, indent=2, default=str), encoding="utf-8")
    pd.DataFrame(figures["labelers"]).to_csv(out / "paper" / "labelers.csv", index=False)
    summary["paper"] = figures
    return figures


def run_pipeline(cfg: PipelineConfig, out_dir: str | Path, progress: bool = True,
                 on_labelers: Callable[[str], None] | None = None) -> PipelineResult:
    """Run Stage 1 (labels, labeler comparison, prompt search) and Stage 2 (fine-tune, generate, score).

    on_labelers: called with the header and the labelers block as soon as they are known (the demo
    prints them first, minutes before Stage 2 ends)."""
    from igft.pipeline.search import run_backbones
    from igft.pipeline.stage1 import run_stage1
    from igft.pipeline.stage2 import run_stage2

    from igft.pipeline.paper import find_paper_runs

    cfg.validate()
    paper_folder = find_paper_runs(cfg.paper_runs)  # a wrong path fails now, before any work
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    phase = PhaseTimer()
    summary: dict[str, Any] = {"mode": cfg.mode}

    logger.info("stage 1: labeling with %s", cfg.stage1.labeler)
    with phase("stage1_labeling"):
        stage1 = run_stage1(cfg, out / "stage1", progress=progress)
    machinery = stage1.settings["llm"] == BUNDLED_LLM and cfg.mode == "replay"
    summary["stage1"] = {"labeler": stage1.settings["labeler"], "llm": stage1.settings["llm"],
                         "messages_labeled": len(stage1.result.labels), "messages": stage1.dataset.n_messages,
                         "coverage": len(stage1.result.labels) / max(stage1.dataset.n_messages, 1),
                         "failed_conversations": len(stage1.result.failures), "intents": len(stage1.result.catalog),
                         "machinery_only": machinery}
    if "report" in stage1.paths:
        report = json.loads(Path(stage1.paths["report"]).read_text())
        summary["stage1"].update({k: report[k] for k in ("AMI", "NCA", "AMI_x_NCA", "accuracy_hungarian") if k in report})

    labelers = None
    if cfg.stage1.compare_labelers and stage1.dataset.has_gold:
        with phase("stage1_labelers"):
            labelers = _compare_labelers(cfg, stage1, out, summary)
        if on_labelers is not None:
            on_labelers("\n".join([summary_header(summary, out), *_section_labelers(summary, out)]))

    with phase("paper_runs"):
        paper = _paper(cfg, paper_folder, out, summary)
    if paper is None:
        del phase.seconds["paper_runs"]  # nothing ran

    searches = {}
    if cfg.search.backbones:
        with phase("search"):
            searches = run_backbones(cfg, out / "search", progress=progress)
        summary["search"] = {name: r.summary() for name, r in searches.items()}
        summary["search_machinery_only"] = any(r.models.get("llm") == BUNDLED_LLM for r in searches.values())

    stage2 = None
    if cfg.stage2.enabled:
        with phase("stage2"):
            stage2 = run_stage2(cfg, _stage2_dataset(cfg, stage1), out / "stage2", progress=progress)
        summary["stage2"] = {**stage2.comparison(), "model": cfg.stage2.model, "format": cfg.stage2.format,
                             "labels_from": cfg.stage2.labels_from, "steps": cfg.stage2.max_steps,
                             "constrained_intents": bool(stage2.catalog) and cfg.stage2.constrained_intents,
                             "catalog_size": len(stage2.catalog)}
        losses = [r["loss"] for r in stage2.train_log if "loss" in r]
        if losses:
            summary["stage2"]["train_loss_first_last"] = [losses[0], losses[-1]]
        summary["stage2"]["seconds"] = stage2.seconds
        summary["stage2"]["base_from_cache"] = stage2.base_from_cache

    summary["seconds"] = phase.column("wall")
    summary["cpu_seconds"] = phase.column("cpu")  # CPU seconds of this process: what a shared machine's load does not inflate
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    return PipelineResult(out, summary, labelers, searches, stage2, paper)


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "n/a" if not isinstance(value, (int, float)) else format(value, spec)


def _labeler_lines(rows: list[dict], indent: str = "    ") -> list[str]:
    lines = [f"{indent}{'labeler':44s} AMIxNCA   AMI    NCA  H-ACC  coverage  intents"]
    for r in rows:
        lines.append(f"{indent}{r['labeler'][:44]:44s} {_fmt(r['AMI_x_NCA']):>7s} {_fmt(r['AMI']):>6s} {_fmt(r['NCA']):>6s} "
                     f"{_fmt(r['accuracy_hungarian']):>6s} {_fmt(r.get('coverage'), '.0%'):>9s} "
                     f"{r['n_intents']:>4d}/{r['n_gold_intents']}")
    return lines


def _section_labelers(s: dict, out: Path) -> list[str]:
    if "labelers" not in s:
        return []
    d = s["labelers_data"]
    lines = [f"Labelers on {d['source']} ({d['conversations']} conversations, {d['messages']} messages, "
             f"{d['gold_intents']} gold intents), scored against gold:"]
    lines += _labeler_lines(s["labelers"])
    if s.get("labelers_note"):
        lines.append(f"    ({s['labelers_note']})")
    lines.append(f"    plot: {out / 'stage1' / 'labelers.png'}")
    return lines


def _section_paper(s: dict) -> list[str]:
    if "paper" not in s:
        return []
    p = s["paper"]
    lines = [f"The paper's recorded GPT-4o runs, replayed through igft ({p['folder']}):"]
    lines += _labeler_lines(p["labelers"])
    for name, r in p["search"].items():
        line = f"    search {name:14s} {r.get('trials', 0):3d} trials, best AMI x NCA {_fmt(r.get('best_AMI_x_NCA'))}"
        if "test_gain_mean" in r:
            line += (f"; re-judged out of sample: test gain {r['test_gain_mean']:+.3f} (sd {r['test_gain_sd']:.3f}), "
                     f"positive in {r['share_positive']:.0%} of {r['n_splits']} splits")
        lines.append(line)
    return lines


def _section_replays(s: dict) -> list[str]:
    st1 = s["stage1"]
    note = MACHINERY_NOTE if st1.get("machinery_only") else SEARCH_MACHINERY_NOTE if s.get("search_machinery_only") else None
    lines = ["GIFA and prompt-search replays" + (f" ({note}):" if note else ":")]
    line = (f"    gifa ({st1['llm']}): {st1['messages_labeled']}/{st1['messages']} messages labeled "
            f"({_fmt(st1.get('coverage'), '.0%')}), {st1['failed_conversations']} "
            f"conversation{'' if st1['failed_conversations'] == 1 else 's'} failed, {st1['intents']} intents")
    if "AMI" in st1:
        line += f"; AMI {st1['AMI']:.3f}, NCA {st1['NCA']:.3f}, AMI x NCA {st1['AMI_x_NCA']:.3f}"
    lines.append(line)
    for name, info in s.get("search", {}).items():
        models = info.get("models", {})
        by = f" (GIFA {models['gifa_llm']})" if models.get("gifa_llm") not in (None, models.get("llm")) else ""
        line = f"    search {name:14s} {info.get('trials')} trials{by}, {info.get('llm_calls')} LLM calls"
        if info.get("best_val") is not None or info.get("best_objective") is not None:
            line += f", best validation AMI x NCA {_fmt(info.get('best_val', info.get('best_objective')))}"
        if info.get("best_test") is not None:
            line += (f", its test {_fmt(info['best_test'])} (seed prompt {_fmt(info.get('seed_test'))}, "
                     f"gain {_fmt(info.get('test_gain'), '+.3f')})")
        lines.append(line)
    return lines


def _section_stage2(s: dict, out: Path) -> list[str]:
    if "stage2" not in s:
        return []
    st2 = s["stage2"]
    decoding = (f"intents decoded over the {st2['catalog_size']} training intents" if st2.get("constrained_intents")
                else "free decoding")
    lines = [f"Stage 2: LoRA fine-tune of {st2['model']} on {st2['labels_from']} intents ({st2['format']}, "
             f"{st2['steps']} steps); held-out toy turns, same prompts and decoding ({decoding}):",
             f"    {'model':12s} intent F1  malformed  ROUGE-L  METEOR  BERTScore(MiniLM)"]
    for name in ("base", "finetuned"):
        if name in st2:
            f = st2[name]
            lines.append(f"    {name:12s} {_fmt(f.get('intent_f1')):>9s} {_fmt(f.get('malformed_share'), '.0%'):>10s} "
                         f"{_fmt(f.get('rougeL')):>8s} {_fmt(f.get('meteor')):>7s} {_fmt(f.get('bertscore_f1')):>8s}"
                         f"   (n={f.get('n')}{', replies from the per-machine cache' if name == 'base' and st2.get('base_from_cache') else ''})")
    loss = st2.get("train_loss_first_last")
    plot = out / "stage2" / "base_vs_finetuned.png"
    lines.append((f"    train loss {loss[0]:.3f} -> {loss[1]:.3f}; " if loss else "    ") + f"plot: {plot}")
    return lines


def summary_header(s: dict, out: Path) -> str:
    return f"igft pipeline [{s['mode']} mode] -> {out}"


def summarize(result: PipelineResult, *, skip_labelers: bool = False) -> str:
    """A short human summary of a pipeline run (what `igft demo` prints): labelers first.

    skip_labelers: leave out the header and the labelers block (already shown by `on_labelers`)."""
    s, out = result.summary, result.out_dir
    lines = [] if skip_labelers else [summary_header(s, out), *_section_labelers(s, out)]
    lines += _section_paper(s) + _section_replays(s) + _section_stage2(s, out)
    lines.append("seconds: " + ", ".join(f"{k} {v}" for k, v in s["seconds"].items()))
    if s.get("cpu_seconds"):
        lines.append("CPU seconds: " + ", ".join(f"{k} {v}" for k, v in s["cpu_seconds"].items()))
    return "\n".join(lines)
