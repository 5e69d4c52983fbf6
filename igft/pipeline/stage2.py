"""Stage 2 of the pipeline: fine-tune on labeled conversations, generate replies, score them.

Thin over igft.finetune: the demo, the notebooks and `igft finetune/generate/score` share that code.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from igft.data import Dataset
from igft.pipeline.config import PipelineConfig

logger = logging.getLogger(__name__)


@dataclass
class Stage2Result:
    train_dir: Path
    adapter_dir: Path
    loss_png: Path
    train_log: list[dict[str, Any]]
    predictions: list[dict[str, Any]]
    scores: dict[str, Any]

    def replies_table(self, n: int = 10) -> pd.DataFrame:
        """Generated replies beside the gold replies (and intents for intent+response)."""
        rows = [{"conversation": p["conversation_number"], "turn": p["turn"], "generated": p.get("reply"),
                 "gold": p["reference"], "intents": ", ".join(p.get("intents") or []),
                 "gold_intents": ", ".join(p.get("gold_intents") or [])} for p in self.predictions[:n]]
        return pd.DataFrame(rows)


def split_for_stage2(dataset: Dataset, cfg: PipelineConfig) -> tuple[Dataset, Dataset]:
    """Train on all but the last `eval_conversations` conversations; those are held out for generation."""
    n_eval = min(cfg.stage2.eval_conversations, max(len(dataset) - 1, 0))
    return dataset.head(len(dataset) - n_eval), Dataset(dataset.conversations[len(dataset) - n_eval:], dataset.source)


def run_stage2(cfg: PipelineConfig, dataset: Dataset, out_dir: str | Path) -> Stage2Result:
    """Fine-tune (LoRA on CPU, QLoRA on a CUDA GPU), generate for held-out conversations, score."""
    from igft.finetune.config import FinetuneConfig
    from igft.finetune.generate import GenerationSettings, evaluation_samples, generate_predictions
    from igft.finetune.scores import score_predictions
    from igft.finetune.train import train

    out = Path(out_dir)
    train_set, held_out = split_for_stage2(dataset, cfg)
    s2 = cfg.stage2
    config = FinetuneConfig(format=s2.format, model=s2.model.removeprefix("local:").removeprefix("hf:"), max_steps=s2.max_steps,
                            max_seq_len=s2.max_seq_len, per_device_train_batch_size=s2.batch_size, seed=cfg.seed, eval_steps=0, save_steps=max(s2.max_steps, 1),
                            val_fraction=0.1, output_dir=str(out / "finetune"))
    logger.info("stage 2: fine-tuning %s on %d conversations (%s, %d steps)", config.model, len(train_set),
                config.format, config.max_steps)
    result = train(config, train_set)
    samples = evaluation_samples(held_out, s2.format, None)
    predictions = generate_predictions(samples, out / "predictions.jsonl", adapter=result.adapter_dir,
                                       settings=GenerationSettings(max_new_tokens=64, batch_size=8, seed=cfg.seed))
    scores = score_predictions(predictions)
    (out / "scores.json").write_text(json.dumps(scores, indent=2), encoding="utf-8")
    return Stage2Result(result.output_dir, result.adapter_dir, result.output_dir / "loss.png", result.log,
                        predictions, scores)
