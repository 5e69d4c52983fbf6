"""`igft demo`: the whole pipeline from the command line (dummy mode by default) into one folder."""
from __future__ import annotations

import argparse
import logging


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="run both stages end to end (dummy mode: replays simulated_runs/, a few CPU training steps)",
        description="Run the whole igft pipeline: GIFA labels + report, labeler comparison, the four prompt-search "
                    "backbones, and a short Stage 2 fine-tune with generated replies and scores. Without --config it "
                    "replays the bundled recordings (no key, no network).")
    p.add_argument("--config", help="pipeline YAML (data, llm, embedder, mode, search, stage2); see examples/demo.yaml")
    p.add_argument("--out", default="runs/demo", help="output folder for every artifact (default: runs/demo)")
    p.add_argument("--mode", choices=("live", "record", "replay"), help="override the config's mode")
    p.add_argument("--max-steps", type=int, help="override stage2.max_steps")
    p.add_argument("--no-stage2", action="store_true", help="skip fine-tuning")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from igft.pipeline import PipelineConfig, load_config, run_pipeline, summarize

    cfg = load_config(args.config) if args.config else PipelineConfig()
    if args.mode:
        cfg.mode = args.mode
    if args.max_steps is not None:
        cfg.stage2.max_steps = args.max_steps
    if args.no_stage2:
        cfg.stage2.enabled = False
    if not args.verbose:
        logging.getLogger("igft").setLevel(logging.INFO)  # the demo narrates its steps
    result = run_pipeline(cfg.validate(), args.out, progress=not args.no_progress)
    print(summarize(result))
    return 0
