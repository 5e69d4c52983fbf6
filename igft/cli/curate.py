"""`igft curate redact|dedup|synth`: data curation before any third-party call.

    igft curate redact --data IN --out DIR [--entities email,phone,...]   -> DIR/redacted.csv, redaction_report.json
    igft curate dedup  --data IN --out DIR [--level both] [--exact-only]  -> DIR/deduplicated.csv, dropped.csv, dedup_report.json
    igft curate synth  --data LABELED --min-count N --out DIR             -> DIR/augmented.csv, synth_report.json

Without --data each reads the bundled toy conversations. `synth` with neither --data nor --cassette
replays the bundled recording (simulated_runs/curate_synth) with its recorded settings.
Outputs are written as JSONL when the input is JSONL.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from igft.errors import IgftError

SYNTH_RECORDING = "curate_synth"  # folder under simulated_runs/
SYNTH_FLAGS = ("min_count", "max_per_intent", "paraphrases_per_call", "max_calls_per_intent", "max_intents",
               "temperature", "max_tokens", "seed", "max_chars", "dedup_threshold")


def register(subparsers: argparse._SubParsersAction) -> None:
    from igft.curate.dedup import DedupConfig
    from igft.curate.detect import DetectorConfig
    from igft.curate.synth import SynthConfig

    p = subparsers.add_parser("curate", help="redact PII, deduplicate, add synthetic examples of rare intents",
                              description="Data curation before any third-party call.")
    sub = p.add_subparsers(dest="curate_command", metavar="STEP", required=True)

    helps = DetectorConfig.field_help()
    r = sub.add_parser("redact", help="replace PII with typed placeholders ({{EMAIL_1}}), consistent within a conversation")
    _data_args(r, "DIR/redacted.csv and DIR/redaction_report.json (counts per type, never the values)")
    r.add_argument("--entities", help=helps["entity_types"])
    r.add_argument("--ner-model", help=helps["ner_model"])
    r.add_argument("--phone-regions", default=",".join(DetectorConfig.phone_regions), help=helps["phone_regions"])
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=run_redact)

    helps = DedupConfig.field_help()
    d = sub.add_parser("dedup", help="drop exact and near-duplicate conversations and messages, keeping the first")
    _data_args(d, "DIR/deduplicated.csv, DIR/dropped.csv (what was dropped, duplicate of what, why), DIR/dedup_report.json")
    d.add_argument("--level", choices=("conversation", "message", "both"), default="both", help=helps["level"])
    d.add_argument("--exact-only", action="store_true", help="only exact duplicates (after normalisation), no MinHash")
    d.add_argument("--threshold", type=float, default=DedupConfig.threshold, help=helps["threshold"])
    d.add_argument("--num-perm", type=int, default=DedupConfig.num_perm, help=helps["num_perm"])
    d.set_defaults(func=run_dedup)

    helps = SynthConfig.field_help()
    s = sub.add_parser("synth", help="paraphrases of rare intents from the configured LLM, marked synthetic",
                       description="Ask the LLM for paraphrases of the messages of intents with fewer than "
                                   "--min-count examples. Without --data and --cassette: replay the bundled "
                                   "recording (SmolLM2-135M on the toy data).")
    _data_args(s, "DIR/augmented.csv (the data + synthetic rows, column synthetic=1) and DIR/synth_report.json",
               data_help="intent-labeled conversation CSV or JSONL, e.g. labels.csv of igft label")
    for name in SYNTH_FLAGS:
        kind = float if name in ("temperature", "dedup_threshold") else int
        s.add_argument("--" + name.replace("_", "-"), type=kind, help=f"{helps[name]} (default: {getattr(SynthConfig, name)})")
    s.add_argument("--llm", help="LLM spec, e.g. openai:gpt-4o, local:smollm2 (default: local:smollm2)")
    s.add_argument("--mode", choices=("live", "record", "replay"),
                   help="live: call the LLM; record: replay hits and record misses; replay: cassette only "
                        "(default: replay with --cassette, else live)")
    s.add_argument("--cassette", help="cassette .jsonl file for record / replay")
    s.add_argument("--max-calls", type=int, help="stop cleanly after this many live LLM calls")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=run_synth)


def _data_args(p: argparse.ArgumentParser, out_help: str, data_help: str = "conversation CSV or JSONL") -> None:
    p.add_argument("--data", help=f"{data_help} (default: the bundled toy conversations)")
    p.add_argument("--out", required=True, help=f"output folder: {out_help}")


def _load(data: str | None):
    from igft.data import load_conversations
    from igft.resources import toy_conversations_path

    path = Path(data) if data else toy_conversations_path()
    if not path.exists():
        raise IgftError(f"data file {path} does not exist; pass --data CSV or JSONL")
    return load_conversations(path), (".jsonl" if path.suffix == ".jsonl" else ".csv")


def _write_json(path: Path, payload: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def run_redact(args: argparse.Namespace) -> int:
    from igft.curate.detect import DetectorConfig
    from igft.curate.entities import parse_entity_types
    from igft.curate.redact import REPORT_FILE, Redactor, write_report

    # Parse every flag before reading data, so a typo costs nothing.
    regions = tuple(r.strip().upper() for r in args.phone_regions.split(",") if r.strip())
    config = DetectorConfig(entity_types=parse_entity_types(args.entities), ner_model=args.ner_model, phone_regions=regions)
    redactor = Redactor(config)
    dataset, suffix = _load(args.data)
    redacted, report = redactor.redact_dataset(dataset, progress=not args.no_progress)
    out = Path(args.out)
    data_path = redacted.save(out / f"redacted{suffix}")
    report_path = write_report(report, out / REPORT_FILE)
    print(report.summary())
    for entity_type, reason in report.not_covered.items():
        print(f"  {entity_type} not covered: {reason}")
    print(f"outputs: {data_path}, {report_path}")
    return 0


def run_dedup(args: argparse.Namespace) -> int:
    from igft.curate.dedup import DedupConfig, deduplicate, write_dedup_outputs

    config = DedupConfig(level=args.level, near=not args.exact_only, threshold=args.threshold,
                         num_perm=args.num_perm).validate()
    dataset, suffix = _load(args.data)
    result = deduplicate(dataset, config)
    paths = write_dedup_outputs(result, dataset, args.out, suffix)
    report = result.report(dataset)
    print(f"kept {report['conversations_kept']}/{report['conversations_in']} conversations, "
          f"{report['messages_kept']}/{report['messages_in']} messages; dropped {report['dropped'] or 'nothing'}"
          + (f"; {report['intent_conflicts']} dropped duplicates had a different gold intent" if report['intent_conflicts'] else ""))
    print("outputs: " + ", ".join(str(p) for p in paths.values()))
    return 0


def _synth_settings(args: argparse.Namespace) -> dict:
    """Flags over the bundled recording's run.json (only when replaying it) over SynthConfig defaults."""
    from igft.resources import simulated_runs_dir

    settings = {"llm": args.llm, "mode": args.mode, "cassette": args.cassette, "data": args.data, "config": {}}
    if not args.data and not args.cassette:
        folder = simulated_runs_dir() / SYNTH_RECORDING
        recorded = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        settings.update(cassette=str(folder / "lm.jsonl"), mode=args.mode or "replay",
                        llm=args.llm or recorded["llm"], config=dict(recorded["config"]))
    settings["config"].update({k: getattr(args, k) for k in SYNTH_FLAGS if getattr(args, k) is not None})
    settings["llm"] = settings["llm"] or "local:smollm2"
    settings["mode"] = settings["mode"] or ("replay" if settings["cassette"] else "live")
    return settings


def run_synth(args: argparse.Namespace) -> int:
    from igft.curate.synth import SynthConfig, synthesize, write_synth_outputs
    from igft.llm.factory import build_lm
    from igft.llm.usage import Budget, UsageMeter

    settings = _synth_settings(args)
    config = SynthConfig(**settings["config"]).validate()
    if args.max_calls is not None and args.max_calls < 1:
        raise IgftError(f"--max-calls must be at least 1, got {args.max_calls}")
    dataset, suffix = _load(settings["data"])
    meter = UsageMeter()
    budget = Budget(max_calls=args.max_calls) if args.max_calls is not None else None
    lm = build_lm(settings["llm"], mode=settings["mode"], cassette=settings["cassette"], usage=meter, budget=budget)
    result = synthesize(dataset, lm, config, progress=not args.no_progress)
    paths = write_synth_outputs(result, args.out, suffix)
    usage = meter.snapshot()
    print(f"synthetic: {len(result.synthetic)} messages for {sum(o.accepted > 0 for o in result.outcomes)}/"
          f"{len(result.outcomes)} rare intents (< {config.min_count} examples) [mode {settings['mode']}, llm {settings['llm']}, "
          f"calls {usage.get('calls', 0)}, live {usage.get('live_calls', 0)}]")
    for outcome in result.outcomes:
        print(f"  {outcome.intent}: {outcome.human_count} human + {outcome.accepted}/{outcome.wanted} synthetic "
              f"in {outcome.calls} calls; rejected {outcome.rejected or 'none'}")
    if result.stopped:
        print(f"stopped early: {result.stopped}; rerun with a larger --max-calls (recorded calls replay for free)")
    print("outputs: " + ", ".join(str(p) for p in paths.values()))
    return 0
