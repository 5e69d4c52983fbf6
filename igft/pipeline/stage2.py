"""Stage 2 of the pipeline: fine-tune on labeled conversations, generate replies, score them beside the base model.

Thin over igft.finetune: the demo, the notebooks and `igft finetune/generate/score` share that code.
The held-out conversations are generated twice with the same prompts and decoding, by the base model
and by the fine-tuned one, so the two rows of the comparison differ only in the training. With
`constrained_intents` the `Intents:` block is decoded over the training intents
(igft.finetune.constrained): the format is then fixed, which intents are chosen is the model's answer.
"""
from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from igft.data import Dataset
from igft.pipeline.config import PipelineConfig
from igft.pipeline.phases import PhaseTimer

logger = logging.getLogger(__name__)

# the figures of each model that the summary and the bar plot show
SUMMARY_KEYS = ("n", "intent_f1", "intent_precision", "intent_recall", "malformed_share", "n_malformed", "bleu",
                "rougeL", "meteor", "bertscore_f1", "embedding_cosine")


@dataclass
class Stage2Result:
    train_dir: Path
    adapter_dir: Path
    loss_png: Path
    train_log: list[dict[str, Any]]
    predictions: list[dict[str, Any]]
    scores: dict[str, Any]
    base_predictions: list[dict[str, Any]] = field(default_factory=list)
    base_scores: dict[str, Any] | None = None
    catalog: list[str] = field(default_factory=list)
    comparison_png: Path | None = None
    base_from_cache: bool = False  # the base replies were read from the per-machine cache
    # per phase: {"train": {"wall": s, "cpu": s}, ...}; cpu = this process's CPU time (all threads),
    # which a shared machine's load does not inflate the way it inflates wall time
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)

    def replies_table(self, n: int = 10) -> pd.DataFrame:
        """Generated replies beside the gold replies (and intents for intent+response)."""
        base = {p["id"]: p for p in self.base_predictions}
        rows = []
        for p in self.predictions[:n]:
            row = {"conversation": p["conversation_number"], "turn": p["turn"], "generated": p.get("reply"),
                   "gold": p["reference"], "intents": ", ".join(p.get("intents") or []),
                   "gold_intents": ", ".join(p.get("gold_intents") or [])}
            if p["id"] in base:
                row["base_intents"] = ", ".join(base[p["id"]].get("intents") or [])
            rows.append(row)
        return pd.DataFrame(rows)

    def comparison(self) -> dict[str, dict[str, Any]]:
        """{"finetuned": {...}, "base": {...}} with SUMMARY_KEYS (base absent when not compared)."""
        out = {"finetuned": summary_figures(self.scores)}
        if self.base_scores is not None:
            out["base"] = summary_figures(self.base_scores)
        return out


def summary_figures(scores: dict[str, Any]) -> dict[str, Any]:
    figures = {k: scores.get(k) for k in SUMMARY_KEYS if k in scores}
    figures["malformed_share"] = (scores.get("n_malformed", 0) / scores["n"]) if scores.get("n") else None
    return figures


def split_for_stage2(dataset: Dataset, cfg: PipelineConfig) -> tuple[Dataset, Dataset]:
    """Train on all but the last `eval_conversations` conversations; those are held out for generation."""
    n_eval = min(cfg.stage2.eval_conversations, max(len(dataset) - 1, 0))
    return dataset.head(len(dataset) - n_eval), Dataset(dataset.conversations[len(dataset) - n_eval:], dataset.source)


def training_catalog(train_set: Dataset) -> list[str]:
    """The intents that appear in the training targets (assistant turns), sorted."""
    return sorted({m.intent.strip() for m in train_set.messages if m.role == "assistant" and m.intent})


def _generate(samples, path: Path, cfg: PipelineConfig, catalog: list[str], *, model_spec: str | None,
              adapter: Path | None) -> list[dict[str, Any]]:
    from igft.finetune.generate import GenerationSettings, generate_predictions, load_for_generation

    model, tokenizer, _ = load_for_generation(model_spec, adapter)
    processors = None
    if cfg.stage2.constrained_intents and cfg.stage2.format == "intent+response" and catalog:
        from igft.finetune.constrained import IntentBlockProcessor
        processors = [IntentBlockProcessor(tokenizer, catalog)]
    settings = GenerationSettings(max_new_tokens=cfg.stage2.max_new_tokens, batch_size=8, seed=cfg.seed)
    return generate_predictions(samples, path, loaded=(model, tokenizer), settings=settings, progress=False,
                                logits_processor=processors)


@contextmanager
def _progress_bars(shown: bool):
    """Without progress (`igft demo --no-progress`): no datasets map bars and no Trainer bar either.

    igft's training arguments set `disable_tqdm=False`, and the Trainer then adds transformers'
    DEFAULT_PROGRESS_CALLBACK (a bar plus printed log dicts); for this run it is swapped for a
    callback that does nothing (the losses still go to train_log.jsonl), and restored afterwards.
    With progress, the bar stays but the per-step log dicts are not printed (they are in train_log.jsonl
    and would bury the demo's summary)."""
    import datasets
    import transformers.trainer as hf_trainer
    from transformers import TrainerCallback
    from transformers.trainer_callback import ProgressCallback

    class Silent(TrainerCallback):
        pass

    class BarOnly(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            pass

    was_enabled, default = datasets.is_progress_bar_enabled(), hf_trainer.DEFAULT_PROGRESS_CALLBACK
    if not shown:
        datasets.disable_progress_bars()
    hf_trainer.DEFAULT_PROGRESS_CALLBACK = BarOnly if shown else Silent
    try:
        yield
    finally:
        hf_trainer.DEFAULT_PROGRESS_CALLBACK = default
        if was_enabled:
            datasets.enable_progress_bars()


def _base_cache_path(samples, cfg: PipelineConfig, catalog: list[str], model: str) -> Path:
    """Where the base model's replies to exactly these prompts, with these settings, are kept.

    The base model never changes between demo runs, so its replies are generated once per machine:
    the key hashes the model, every prompt, the decoding settings, the intents catalog of the
    constrained decoder and the torch/transformers/igft versions (a new version regenerates)."""
    import hashlib

    import torch
    import transformers

    import igft
    from igft.llm.local_models import cache_dir

    key = json.dumps({"model": model, "samples": [[x["id"], x["prompt"], x["format"]] for x in samples],
                      "catalog": catalog, "constrained": cfg.stage2.constrained_intents,
                      "max_new_tokens": cfg.stage2.max_new_tokens, "seed": cfg.seed,
                      "versions": [torch.__version__, transformers.__version__, igft.__version__]}, sort_keys=True)
    return cache_dir() / "base_generations" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.jsonl"


def _base_predictions(samples, path: Path, cfg: PipelineConfig, catalog: list[str], model: str) -> tuple[list, bool]:
    """The base model's predictions, from the per-machine cache when these exact requests were generated
    before (a warm demo then spends its time on what changes: the fine-tune); (records, from_cache)."""
    import shutil

    from igft.finetune.generate import read_predictions

    cached = _base_cache_path(samples, cfg, catalog, model)
    if cached.is_file() and not path.exists():
        records = read_predictions(cached)
        if {r["id"] for r in records} == {x["id"] for x in samples}:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cached, path)
            logger.info("stage 2: base replies from the cache %s", cached)
            return records, True
    records = _generate(samples, path, cfg, catalog, model_spec=model, adapter=None)
    if {r["id"] for r in records} == {x["id"] for x in samples}:  # only a complete set is reused
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, cached)
    return records, False


def run_stage2(cfg: PipelineConfig, dataset: Dataset, out_dir: str | Path, progress: bool = True) -> Stage2Result:
    """Fine-tune (LoRA on CPU, QLoRA on a CUDA GPU), generate for held-out conversations, score; the same
    for the base model when `compare_base`."""
    from igft.finetune.config import FinetuneConfig
    from igft.finetune.generate import evaluation_samples
    from igft.finetune.scores import score_predictions
    from igft.finetune.train import train

    out = Path(out_dir)
    train_set, held_out = split_for_stage2(dataset, cfg)
    s2 = cfg.stage2
    model = s2.model.removeprefix("local:").removeprefix("hf:")
    config = FinetuneConfig(format=s2.format, model=model, max_steps=s2.max_steps, learning_rate=s2.learning_rate,
                            max_seq_len=s2.max_seq_len, per_device_train_batch_size=s2.batch_size, seed=cfg.seed,
                            eval_steps=0, save_steps=max(s2.max_steps, 1), val_fraction=0.0,
                            output_dir=str(out / "finetune"))
    logger.info("stage 2: fine-tuning %s on %d conversations (%s, %d steps)", config.model, len(train_set),
                config.format, config.max_steps)
    phase = PhaseTimer()
    with phase("train"), _progress_bars(progress):
        result = train(config, train_set)
    catalog = training_catalog(train_set) if s2.format == "intent+response" else []
    samples = evaluation_samples(held_out, s2.format, None)
    logger.info("stage 2: generating %d held-out replies with the fine-tuned model%s", len(samples),
                f" (intents decoded over {len(catalog)} training intents)" if catalog and s2.constrained_intents else "")
    with phase("generate_finetuned"):
        predictions = _generate(samples, out / "predictions.jsonl", cfg, catalog, model_spec=None, adapter=result.adapter_dir)
    with phase("score_finetuned"):
        scores = score_predictions(predictions)
    (out / "scores.json").write_text(json.dumps(scores, indent=2), encoding="utf-8")
    base_predictions, base_scores, base_cached = [], None, False
    if s2.compare_base:
        logger.info("stage 2: the same replies from the base model %s", model)
        with phase("generate_base"):
            base_predictions, base_cached = _base_predictions(samples, out / "base_predictions.jsonl", cfg, catalog, model)
        with phase("score_base"):
            base_scores = score_predictions(base_predictions)
        (out / "base_scores.json").write_text(json.dumps(base_scores, indent=2), encoding="utf-8")
    stage2 = Stage2Result(result.output_dir, result.adapter_dir, result.output_dir / "loss.png", result.log,
                          predictions, scores, base_predictions, base_scores, catalog, seconds=phase.seconds,
                          base_from_cache=base_cached)
    if base_scores is not None:
        from igft.pipeline.plots import plot_stage2_comparison
        stage2.comparison_png = plot_stage2_comparison(stage2.comparison(), out / "base_vs_finetuned.png")
    return stage2
