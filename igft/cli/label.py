"""`igft label`: label a conversation file with GIFA (or the embedding / hybrid labelers).

With no --data and no --cassette it replays the package's own recorded run: the toy conversations and
the cassette under simulated_runs/gifa/ (no key, no network, no model weights).

--cassette DIR holds `lm.jsonl`, `embeddings.jsonl` and `run.json` (the settings of the recorded run,
used as defaults so a replay sends exactly the recorded requests); --cassette FILE.jsonl keeps both
kinds of records in that one file.
"""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from igft.errors import IgftError

logger = logging.getLogger(__name__)

LABELERS = ("gifa", "embeddings", "hybrid")
RUN_FILE = "run.json"
TOY_DATA = "toy"  # run.json's name for the bundled toy conversations
DEFAULTS = {"llm": "local:smollm2", "embedder": "local:minilm", "labeler": "gifa"}
# CLI flag -> GifaConfig field
GIFA_FLAGS = {"method": "method", "top_k": "top_k", "top_n": "top_n", "window": "window",
              "max_retries": "max_retries", "tokens_per_message": "tokens_per_message",
              "temperature": "temperature", "seed": "seed"}


def register(subparsers: argparse._SubParsersAction) -> None:
    from igft.gifa.labeler import GifaConfig

    helps = GifaConfig.field_help()
    p = subparsers.add_parser(
        "label", help="label every message with an intent (GIFA, embeddings or hybrid)",
        description="Label conversations with intents. Without --data and --cassette: replay the bundled "
                    "recorded GIFA run on the toy data (no key, no network).")
    p.add_argument("--data", help="conversation CSV or JSONL (default: the bundled toy conversations)")
    p.add_argument("--llm", help=f"LLM spec, e.g. openai:gpt-4o, openai-compatible:URL:MODEL, local:smollm2, hf:PATH "
                                 f"(default: the cassette's, else {DEFAULTS['llm']})")
    p.add_argument("--embedder", help=f"embedder spec, e.g. openai:text-embedding-3-small, local:minilm "
                                      f"(default: the cassette's, else {DEFAULTS['embedder']})")
    p.add_argument("--mode", choices=("live", "record", "replay"),
                   help="live: call models; record: replay hits and record misses; replay: cassette only "
                        "(default: live with --data and no --cassette, else replay)")
    p.add_argument("--cassette", help="cassette folder (lm.jsonl, embeddings.jsonl, run.json) or one .jsonl file "
                                      "(default without --data: the bundled simulated_runs/gifa)")
    p.add_argument("--out", required=True, help="output folder: labels.csv, catalog.csv, stats.json, report.json, progress")
    p.add_argument("--labeler", choices=LABELERS, help="gifa (default), embeddings or hybrid")
    p.add_argument("--method", choices=("name", "example", "general"), help=helps["method"])
    p.add_argument("--top-k", type=int, help=helps["top_k"])
    p.add_argument("--top-n", type=int, help=helps["top_n"])
    p.add_argument("--window", type=int, help=helps["window"])
    p.add_argument("--max-retries", type=int, help=helps["max_retries"])
    p.add_argument("--tokens-per-message", type=int, help=helps["tokens_per_message"])
    p.add_argument("--temperature", type=float, help=helps["temperature"])
    p.add_argument("--seed", type=int, help=helps["seed"])
    p.add_argument("--instruction-file", help="file holding the GIFA instruction (default: igft's seed instruction)")
    p.add_argument("--max-conversations", type=int, help="label only the first N conversations")
    p.add_argument("--max-calls", type=int, help="stop cleanly after this many live LLM calls (rerun to resume)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="option of the embeddings/hybrid labeler (repeatable), e.g. --option n_clusters=40")
    p.add_argument("--overwrite", action="store_true", help="discard progress already in --out and start over")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _cassette_paths(cassette: Path) -> tuple[Path, Path, Path | None]:
    """(lm cassette, embedder cassette, run.json or None) for a folder or a single .jsonl file."""
    if cassette.suffix == ".jsonl":
        return cassette, cassette, None
    return cassette / "lm.jsonl", cassette / "embeddings.jsonl", cassette / RUN_FILE


def _read_run_file(path: Path | None) -> dict:
    if path is None or not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise IgftError(f"cannot read {path}: {err}; fix or delete it") from err


def resolve_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Merge flags over the cassette's run.json over built-in defaults; decide data, mode, cassette."""
    from igft.resources import simulated_runs_dir, toy_conversations_path

    cassette = Path(args.cassette) if args.cassette else None
    if cassette is None and not args.data:
        cassette = simulated_runs_dir() / "gifa"
    mode = args.mode or ("live" if args.data and not args.cassette else "replay")
    if mode != "live" and cassette is None:
        raise IgftError(f"--mode {mode} needs --cassette PATH (a folder or a .jsonl file)")
    lm_path = emb_path = run_path = None
    if cassette is not None:
        lm_path, emb_path, run_path = _cassette_paths(cassette)
        if mode == "replay" and not lm_path.exists() and not emb_path.exists():
            raise IgftError(f"no cassette at {cassette}; record one with --mode record --cassette {cassette}")
    recorded = _read_run_file(run_path)
    data = args.data or recorded.get("data") or TOY_DATA
    data_path = toy_conversations_path() if data == TOY_DATA else Path(data)
    gifa = dict(recorded.get("gifa", {}))
    for flag, name in GIFA_FLAGS.items():
        if getattr(args, flag) is not None:
            gifa[name] = getattr(args, flag)
    if args.instruction_file:
        try:
            gifa["instruction"] = Path(args.instruction_file).read_text(encoding="utf-8")
        except OSError as err:
            raise IgftError(f"cannot read --instruction-file {args.instruction_file}: {err.strerror}") from err
    max_conv = args.max_conversations if args.max_conversations is not None else recorded.get("max_conversations")
    return {
        "data": data, "data_path": data_path, "mode": mode, "cassette": cassette,
        "lm_cassette": lm_path, "embedder_cassette": emb_path, "run_file": run_path,
        "llm": args.llm or recorded.get("llm") or DEFAULTS["llm"],
        "embedder": args.embedder or recorded.get("embedder") or DEFAULTS["embedder"],
        "labeler": args.labeler or recorded.get("labeler") or DEFAULTS["labeler"],
        "gifa": gifa, "max_conversations": max_conv,
        "options": _parse_options(args.option),
    }


def _parse_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise IgftError(f"--option {pair!r} is not KEY=VALUE, e.g. --option n_clusters=40")
        options[key.strip()] = value.strip()
    return options


def _gifa_config(values: dict):
    from igft.gifa.labeler import GifaConfig

    known = {f.name for f in fields(GifaConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise IgftError(f"unknown GIFA setting(s) {unknown} in run.json; valid: {sorted(known)}")
    return GifaConfig(**values).validate()


def run(args: argparse.Namespace) -> int:
    from igft.data import load_conversations
    from igft.labeling import write_outputs
    from igft.llm.factory import build_embedder, build_lm
    from igft.llm.usage import Budget, UsageMeter

    settings = resolve_settings(args)
    if not settings["data_path"].exists():
        raise IgftError(f"data file {settings['data_path']} does not exist; pass --data CSV")
    dataset = load_conversations(settings["data_path"])
    if settings["max_conversations"] is not None:
        if settings["max_conversations"] < 1:
            raise IgftError("--max-conversations must be at least 1")
        dataset = dataset.head(settings["max_conversations"])
    out = Path(args.out)
    if args.overwrite and out.exists():
        for name in ("progress.jsonl", "embeddings.npy", "embeddings.json"):
            (out / name).unlink(missing_ok=True)
    mode = settings["mode"]
    meter = UsageMeter()
    budget = Budget(max_calls=args.max_calls) if args.max_calls is not None else None
    embedder = build_embedder(settings["embedder"], mode=mode, cassette=settings["embedder_cassette"], usage=meter)
    labeler = settings["labeler"]
    needs_lm = labeler in ("gifa", "hybrid")
    lm = build_lm(settings["llm"], mode=mode, cassette=settings["lm_cassette"], usage=meter, budget=budget) if needs_lm else None
    progress = not args.no_progress

    if labeler == "gifa":
        from igft.gifa.labeler import label_dataset

        config = _gifa_config(settings["gifa"])
        if mode == "record" and settings["run_file"] is not None:
            _write_run_file(settings, config, dataset)
        result = label_dataset(dataset, lm, embedder, config, out_dir=out, progress=progress)
    else:
        import igft.discover as discover

        result = discover.label_with(labeler, dataset, embedder=embedder, lm=lm,
                                     seed=int(settings["gifa"].get("seed", 0)), progress=progress,
                                     **settings["options"])
    result.stats["usage"] = meter.snapshot()
    result.stats["mode"] = mode
    paths = write_outputs(result, dataset, out)
    _print_summary(labeler, result, dataset, paths, mode, settings)
    return 0


def _write_run_file(settings: dict, config, dataset) -> None:
    """Store the recorded run's settings beside its cassette so a replay sends the same requests."""
    path: Path = settings["run_file"]
    path.parent.mkdir(parents=True, exist_ok=True)
    from igft.resources import toy_conversations_path

    data = settings["data"]
    is_toy = data == TOY_DATA or Path(data).resolve() == toy_conversations_path().resolve()
    record = {"labeler": "gifa", "llm": settings["llm"], "embedder": settings["embedder"],
              "data": TOY_DATA if is_toy else str(data), "max_conversations": settings["max_conversations"],
              "gifa": asdict(config)}
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _print_summary(labeler: str, result, dataset, paths: dict, mode: str, settings: dict) -> None:
    stats = result.stats
    n_intents = len(result.catalog)
    print(f"{labeler}: labeled {len(result.labels)}/{dataset.n_messages} messages of {len(dataset)} conversations "
          f"({len(result.failures)} failed) -> {n_intents} intents  [mode {mode}, llm {settings['llm'] if labeler != 'embeddings' else '-'}, "
          f"embedder {settings['embedder']}]")
    usage = stats.get("usage", {})
    print(f"calls {usage.get('calls', stats.get('calls', 0))} (live {usage.get('live_calls', 0)}, "
          f"cached {usage.get('cached_calls', 0)}), tokens {usage.get('prompt_tokens', 0)}+"
          f"{usage.get('completion_tokens', 0)}, retries {stats.get('retries', 0)}, "
          f"{stats.get('seconds', 0):.1f} s")
    for failure in result.failures[:5]:
        print(f"  failed conversation {failure['conversation_number']}: {failure.get('reason')}")
    if len(result.failures) > 5:
        print(f"  ... and {len(result.failures) - 5} more failures (see stats.json)")
    print("outputs: " + ", ".join(str(p) for p in paths.values()))
    if "report" in paths:
        report = json.loads(Path(paths["report"]).read_text())
        try:
            from igft.metrics import evaluate_labels, format_report

            print(format_report(evaluate_labels(dataset, result.labels)))
        except ImportError:
            keys = ("AMI", "NCA", "purity", "ARI", "NMI", "pairwise_F1", "accuracy_hungarian", "n_gold_intents", "n_pred_intents")
            print("  ".join(f"{k} {report[k]:.4f}" if isinstance(report.get(k), float) else f"{k} {report.get(k)}"
                            for k in keys if k in report))
