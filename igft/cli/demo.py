"""`igft demo`: the whole pipeline from the command line (dummy mode by default) into one folder."""
from __future__ import annotations

import argparse
import logging


def register(subparsers: argparse._SubParsersAction) -> None:
    from igft.pipeline.config import Stage2Config

    p = subparsers.add_parser(
        "demo", help="run both stages end to end (dummy mode: labelers on the toy data, the bundled replays, a CPU fine-tune)",
        description="Run the whole igft pipeline: the labelers side by side on the toy data's gold intents (printed "
                    "first), GIFA and the four prompt-search backbones replayed, and a Stage 2 LoRA fine-tune scored "
                    "beside its base model. Without --config it replays the bundled recordings (no key, no network). "
                    "With --paper-runs (or $IGFT_PAPER_RUNS) it adds the paper's recorded GPT-4o runs.")
    p.add_argument("--config", help="pipeline YAML (data, llm, embedder, mode, search, stage2); see examples/demo.yaml (default: none, dummy mode on the toy data with the bundled recordings)")
    p.add_argument("--out", default="runs/demo", help="output folder for every artifact (default: runs/demo)")
    p.add_argument("--mode", choices=("live", "record", "replay"), help="override the config's mode (default: the config's, replay without --config)")
    p.add_argument("--paper-runs", metavar="PATH",
                   help="the paper's `Stage 1/` folder or repository clone (see `igft paper-runs --download`); "
                        "default: $IGFT_PAPER_RUNS, else left out")
    p.add_argument("--max-steps", type=int, help=f"override stage2.max_steps (default: the config's, {Stage2Config().max_steps} without --config)")
    p.add_argument("--no-stage2", action="store_true", help="skip fine-tuning")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from igft.pipeline import PipelineConfig, load_config, run_pipeline, summarize

    cfg = load_config(args.config) if args.config else PipelineConfig()
    if args.mode:
        cfg.mode = args.mode
    if args.paper_runs:
        cfg.paper_runs = args.paper_runs
    if args.max_steps is not None:
        cfg.stage2.max_steps = args.max_steps
    if args.no_stage2:
        cfg.stage2.enabled = False
    if args.verbose:
        logging.getLogger("igft").setLevel(logging.INFO)  # -v narrates each step
    shown = []

    def show_labelers(text: str) -> None:
        print(text, flush=True)  # the comparison comes first, minutes before Stage 2 is done
        shown.append(True)

    result = run_pipeline(cfg.validate(), args.out, progress=not args.no_progress, on_labelers=show_labelers)
    print(summarize(result, skip_labelers=bool(shown)))
    return 0
