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
    max_calls: int | None = None      # budgets count every run in `out` (usage.json)
    max_tokens: int | None = None
    max_dollars: float | None = None
    options: dict[str, str] = field(default_factory=dict)  # embeddings/hybrid labeler options
    overwrite: bool = False
    progress: bool = True
    retry_failed: bool = False        # relabel the failures recorded in `out`
    plan: bool = False                # estimate calls, tokens and $ and stop before any call
    request_timeout: float | None = None  # seconds per HTTP request (OpenAI-compatible backends)
    max_attempts: int | None = None   # attempts per request, retries of transient faults included
    concurrency: int | None = None    # requests in flight at most (the adaptive limit starts here)
    api_key_env: str | None = None    # environment variable holding the endpoint's key
    save_endpoint: bool = False       # keep the server URL of openai-compatible specs in run.json
    redact: bool | None = None        # replace PII with placeholders before any model call (igft.curate);
                                      # None: as the cassette's run.json recorded it, else off


@dataclass
class LabelRun:
    dataset: Dataset
    result: LabelingResult | None   # None for a --plan run
    paths: dict[str, Path]
    settings: dict[str, Any]
    plan: Any = None                 # igft.gifa.plan.LabelingPlan for a --plan run


def _cassette_paths(cassette: Path) -> tuple[Path, Path, Path | None]:
    """(lm cassette, embedder cassette, run.json or None) for a folder or a single .jsonl file."""
    if cassette.suffix == ".jsonl":
        return cassette, cassette, None
    return cassette / "lm.jsonl", cassette / "embeddings.jsonl", cassette / RUN_FILE


def read_run_file(path: Path | None) -> dict:
    """A cassette folder's run.json (the recorded run's settings); {} when there is none."""
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
    recorded = read_run_file(run_path)
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
    labeler = args.labeler or recorded.get("labeler") or DEFAULTS["labeler"]
    return {
        "data": data, "data_path": data_path, "mode": mode, "cassette": cassette,
        "lm_cassette": lm_path, "embedder_cassette": emb_path, "run_file": run_path,
        "llm": args.llm or recorded.get("llm") or DEFAULTS["llm"],
        "embedder": args.embedder or recorded.get("embedder") or DEFAULTS["embedder"],
        "labeler": labeler,
        "gifa": gifa, "max_conversations": max_conv,
        # A recording's labeler options (hybrid: max_tokens, ...) shape its requests, as GIFA's settings do.
        "options": {**(recorded.get("options", {}) if labeler == recorded.get("labeler") else {}), **args.options},
        # Redaction changes every prompt, so it is part of what a replay must repeat (run.json).
        "redact": bool(args.redact if args.redact is not None else recorded.get("redact", False)),
    }


def _gifa_config(values: dict):
    from igft.gifa.labeler import GifaConfig

    known = {f.name for f in fields(GifaConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise IgftError(f"unknown GIFA setting(s) {unknown} in run.json; valid: {sorted(known)}")
    return GifaConfig(**values).validate()


def _write_run_file(settings: dict, config) -> None:
    """Store the recorded run's settings beside its cassette so a replay sends the same requests
    (config: the GifaConfig of a GIFA run, None for the embeddings and hybrid labelers)."""
    write_label_run_file(settings["run_file"], labeler=settings["labeler"], llm=settings["llm"],
                         embedder=settings["embedder"], data=settings["data"],
                         max_conversations=settings["max_conversations"], redact=settings["redact"],
                         gifa_config=config, options=settings["options"],
                         seed=int(settings["gifa"].get("seed", 0)),
                         save_endpoint=bool(settings.get("save_endpoint")))


def write_label_run_file(path: Path, *, labeler: str, llm: str, embedder: str, data: str | Path,
                         max_conversations: int | None = None, redact: bool = False, gifa_config=None,
                         options: dict | None = None, seed: int = 0, save_endpoint: bool = False) -> None:
    """The one writer of a labeling recording's run.json (`igft label --mode record` and the pipeline's
    hybrid recording), so `igft label --cassette FOLDER` replays either with no flags."""
    from igft.llm.factory import redacted_spec
    from igft.resources import toy_conversations_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    is_toy = str(data) == TOY_DATA or Path(data).resolve() == toy_conversations_path().resolve()
    record = {"labeler": labeler,
              "llm": llm if save_endpoint else redacted_spec(llm),
              "embedder": embedder if save_endpoint else redacted_spec(embedder, embedder=True),
              "data": TOY_DATA if is_toy else str(data), "max_conversations": max_conversations,
              "redact": redact}
    if gifa_config is not None:  # GIFA: every setting its requests depend on
        record["gifa"] = {k: v for k, v in asdict(gifa_config).items() if k != "embed_workers"}
    else:  # embeddings / hybrid: their options and the seed (the only GIFA setting they read)
        record["options"] = dict(options or {})
        record["gifa"] = {"seed": int(seed)}
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _backend_options(args: LabelRunRequest) -> dict[str, Any]:
    """Options for OpenAI(-compatible) backends (other backends ignore them)."""
    options: dict[str, Any] = {}
    if args.request_timeout is not None:
        if args.request_timeout <= 0:
            raise IgftError(f"--request-timeout must be positive seconds, got {args.request_timeout}")
        options["timeout"] = float(args.request_timeout)
    if args.max_attempts is not None:
        if args.max_attempts < 1:
            raise IgftError(f"--max-attempts must be at least 1, got {args.max_attempts}")
        options["max_attempts"] = int(args.max_attempts)
    if args.concurrency is not None:
        if args.concurrency < 1:
            raise IgftError(f"--concurrency must be at least 1, got {args.concurrency}")
        options["max_concurrency"] = int(args.concurrency)
    if args.api_key_env:
        options["api_key_env"] = args.api_key_env
    return options


def _check_budget_flags(args: LabelRunRequest) -> None:
    for flag, value in (("--max-calls", args.max_calls), ("--max-tokens", args.max_tokens),
                        ("--max-dollars", args.max_dollars)):
        if value is not None and value < 0:
            raise IgftError(f"{flag} must be 0 or more, got {value}")


def _finished_numbers(out: Path) -> set[int]:
    """Conversations already labeled in `out` (read only: --plan writes nothing)."""
    from igft.gifa.progress import PROGRESS_FILE

    path = out / PROGRESS_FILE
    done: set[int] = set()
    if not path.is_file():
        return done
    for line in path.read_bytes().split(b"\n")[1:]:
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(record, dict) and record.get("labels") is not None:
            done.add(record.get("conversation_number"))
    return done


def run_labeling(args: LabelRunRequest) -> LabelRun:
    """Label, write labels.csv / catalog.csv / stats.json / report.json into args.out, return everything."""
    from igft.data import load_conversations
    from igft.labeling import write_outputs
    from igft.llm.factory import build_embedder, build_lm, parse_spec
    from igft.llm.ledger import UsageLedger
    from igft.llm.usage import Budget, UsageMeter

    settings = resolve_settings(args)
    settings["save_endpoint"] = args.save_endpoint
    _check_budget_flags(args)
    backend = _backend_options(args)
    if not settings["data_path"].exists():
        raise IgftError(f"data file {settings['data_path']} does not exist; pass --data CSV")
    dataset = load_conversations(settings["data_path"])
    if settings["max_conversations"] is not None:
        if settings["max_conversations"] < 1:
            raise IgftError("--max-conversations must be at least 1")
        dataset = dataset.head(settings["max_conversations"])
    out = Path(args.out)
    if settings["redact"]:  # before any model is built: prompts, cassettes, outputs and logs see placeholders only
        from igft.curate.redact import redact_before_calls
        dataset = redact_before_calls(dataset, out)
    labeler = settings["labeler"]
    needs_lm = labeler in ("gifa", "hybrid")
    if args.plan:
        if labeler != "gifa":
            raise IgftError("--plan estimates GIFA runs; drop it for --labeler embeddings / hybrid")
        from igft.gifa.plan import plan_labeling

        config = _gifa_config(settings["gifa"])
        lm_name = parse_spec(settings["llm"]).name
        emb_name = parse_spec(settings["embedder"], embedder=True).name
        skip = set() if args.overwrite else _finished_numbers(out)
        plan = plan_labeling(dataset, config, lm_name, emb_name, skip=skip,
                             embed=args.overwrite or not (out / "embeddings.npy").exists())
        return LabelRun(dataset, None, {}, settings, plan=plan)
    if args.overwrite and out.exists():
        for name in ("progress.jsonl", "embeddings.npy", "embeddings.json"):
            (out / name).unlink(missing_ok=True)
    mode = settings["mode"]
    meter = UsageMeter()
    # --overwrite starts a new job (as optimize --no-resume): its budget counts from zero, usage.json keeps the old runs
    ledger = UsageLedger(out, "label", mode, new_job=args.overwrite)
    ledger.attach(meter)
    budget = None
    if any(v is not None for v in (args.max_calls, args.max_tokens, args.max_dollars)):
        budget = Budget(max_calls=args.max_calls, max_tokens=args.max_tokens, max_dollars=args.max_dollars)
    try:
        embedder = build_embedder(settings["embedder"], mode=mode, cassette=settings["embedder_cassette"], usage=meter,
                                  budget=budget, **backend)
        lm = build_lm(settings["llm"], mode=mode, cassette=settings["lm_cassette"], usage=meter, budget=budget,
                      **backend) if needs_lm else None
        progress = args.progress

        if labeler == "gifa":
            from igft.gifa.labeler import label_dataset

            config = _gifa_config(settings["gifa"])
            if parse_spec(settings["embedder"], embedder=True).backend.startswith("openai"):
                config.embed_workers = backend.get("max_concurrency", 8)  # remote batches in parallel
            if mode == "record" and settings["run_file"] is not None:
                _write_run_file(settings, config)
            # Progress of a run with the other --redact setting is refused like other settings (its
            # prompts differ); the key is absent for unredacted runs, so their headers stay as before.
            result = label_dataset(dataset, lm, embedder, config, out_dir=out, progress=progress,
                                   retry_failed=args.retry_failed,
                                   run_settings={"redact": True} if settings["redact"] else None)
        else:
            import igft.discover as discover

            if mode == "record" and settings["run_file"] is not None:
                _write_run_file(settings, None)

            result = discover.label_with(labeler, dataset, embedder=embedder, lm=lm,
                                         seed=int(settings["gifa"].get("seed", 0)), progress=progress,
                                         **settings["options"])
    finally:
        ledger.finish()
    # Totals over every run in this folder, and what each run (this one last) spent.
    result.stats["usage"] = ledger.totals()
    result.stats["usage_this_run"] = meter.snapshot()
    result.stats["runs"] = ledger.runs()
    result.stats["mode"] = mode
    paths = write_outputs(result, dataset, out)
    return LabelRun(dataset, result, paths, settings)
