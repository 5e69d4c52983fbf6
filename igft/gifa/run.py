"""Run a labeler the way `igft label` does: settings from flags over a cassette's run.json over defaults.

Shared by the CLI, `igft demo` and the notebooks, so a replay from any of them sends exactly the
requests that were recorded.

A cassette folder holds `lm.jsonl`, `embeddings.jsonl` and `run.json` (the settings of the recorded
run); a single `.jsonl` file keeps both kinds of records.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from igft.data import Dataset
from igft.errors import IgftError
from igft.labeling import LabelingResult

logger = logging.getLogger(__name__)

LABELERS = ("gifa", "embeddings", "hybrid")
RUN_FILE = "run.json"
TOY_DATA = "toy"  # run.json's name for the bundled toy conversations
DEFAULTS = {"llm": "local:smollm2", "embedder": "local:minilm", "labeler": "gifa"}


@dataclass
class LabelRunRequest:
    """What to label and how; None means: the cassette's recorded value, else igft's default."""

    out: str
    data: str | None = None
    llm: str | None = None
    embedder: str | None = None
    mode: str | None = None
    cassette: str | None = None
    labeler: str | None = None
    gifa: dict[str, Any] = field(default_factory=dict)   # GifaConfig overrides
    instruction_file: str | None = None
    max_conversations: int | None = None
    max_calls: int | None = None
    options: dict[str, str] = field(default_factory=dict)  # embeddings/hybrid labeler options
    overwrite: bool = False
    progress: bool = True


@dataclass
class LabelRun:
    dataset: Dataset
    result: LabelingResult
    paths: dict[str, Path]
    settings: dict[str, Any]


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


def resolve_settings(args: LabelRunRequest) -> dict[str, Any]:
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
    gifa.update({k: v for k, v in args.gifa.items() if v is not None})
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
        "options": dict(args.options),
    }


def _gifa_config(values: dict):
    from igft.gifa.labeler import GifaConfig

    known = {f.name for f in fields(GifaConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise IgftError(f"unknown GIFA setting(s) {unknown} in run.json; valid: {sorted(known)}")
    return GifaConfig(**values).validate()


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


def run_labeling(args: LabelRunRequest) -> LabelRun:
    """Label, write labels.csv / catalog.csv / stats.json / report.json into args.out, return everything."""
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
    progress = args.progress

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
    return LabelRun(dataset, result, paths, settings)


