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
from pathlib import Path

from igft.errors import IgftError

logger = logging.getLogger(__name__)

from igft.gifa.run import DEFAULTS, LABELERS

# Defaults the endpoint flags document; the values live in the backend (no SDK import here).
DEFAULT_REQUEST_TIMEOUT = 60.0
DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_MAX_FAILED_SHARE = 0.2
EXIT_TOO_MANY_FAILED = 3
# CLI flag -> GifaConfig field
GIFA_FLAGS = {"method": "method", "top_k": "top_k", "top_n": "top_n", "window": "window",
              "max_retries": "max_retries", "tokens_per_message": "tokens_per_message",
              "temperature": "temperature", "seed": "seed"}


def register(subparsers: argparse._SubParsersAction) -> None:
    from igft.gifa.labeler import GifaConfig

    defaults = GifaConfig()
    # A replay takes these from the recording's run.json (so it sends the recorded requests).
    helps = {name: f"{text} (default: the cassette's run.json value, else {getattr(defaults, name)})"
             for name, text in GifaConfig.field_help().items() if hasattr(defaults, name)}
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
    b = p.add_argument_group("budget (counted over every run of the job in --out: a rerun continues it, --overwrite starts a new one)")
    b.add_argument("--max-calls", type=int, help="stop cleanly after this many live LLM calls (rerun to resume)")
    b.add_argument("--max-tokens", type=int, help="stop cleanly after this many live prompt+completion tokens")
    b.add_argument("--max-dollars", type=float, help="stop cleanly after this many estimated US dollars of live calls")
    b.add_argument("--plan", action="store_true",
                   help="print the calls, tokens and $ the run will need, then stop before any call")
    e = p.add_argument_group("endpoint (OpenAI and openai-compatible backends)")
    e.add_argument("--request-timeout", type=float, metavar="SECONDS",
                   help=f"give up on one HTTP request after this long and retry it (default {DEFAULT_REQUEST_TIMEOUT:g})")
    e.add_argument("--max-attempts", type=int,
                   help=f"attempts per request, retries of 429/5xx/timeouts/broken bodies included (default {DEFAULT_MAX_ATTEMPTS})")
    e.add_argument("--concurrency", type=int,
                   help="requests in flight at most; the limit halves on 429 and grows back (default 8; "
                        "use --window N to label N conversations at once)")
    e.add_argument("--api-key-env", metavar="NAME",
                   help="environment variable with the endpoint's key (default: OPENAI_API_KEY for openai:, "
                        "OPENAI_COMPATIBLE_API_KEY for openai-compatible:, else no key)")
    e.add_argument("--save-endpoint", action="store_true",
                   help="keep the server URL of an openai-compatible spec in the cassette's run.json (default: model only)")
    f = p.add_argument_group("failures")
    f.add_argument("--retry-failed", action="store_true",
                   help="relabel the conversations that failed in an earlier run in --out, with fresh attempts")
    f.add_argument("--max-failed-share", type=float, default=DEFAULT_MAX_FAILED_SHARE, metavar="SHARE",
                   help=f"exit with status 3 when more than this share of conversations failed (default {DEFAULT_MAX_FAILED_SHARE})")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="option of the embeddings/hybrid labeler (repeatable), e.g. --option n_clusters=40")
    p.add_argument("--overwrite", action="store_true", help="discard progress already in --out and start over")
    p.add_argument("--redact", action=argparse.BooleanOptionalAction, default=None,
                   help="replace PII (e-mail, phone, card, IBAN, URL, IP) with {{TYPE_n}} placeholders before any "
                        "model call; report in OUT/redaction_report.json (default: as the cassette's run.json "
                        "recorded, else off; a resume in --out must keep the setting)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _parse_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise IgftError(f"--option {pair!r} is not KEY=VALUE, e.g. --option n_clusters=40")
        options[key.strip()] = value.strip()
    return options


def run(args: argparse.Namespace) -> int:
    from igft.gifa.run import LabelRunRequest, run_labeling

    request = LabelRunRequest(
        out=args.out, data=args.data, llm=args.llm, embedder=args.embedder, mode=args.mode, cassette=args.cassette,
        labeler=args.labeler, gifa={name: getattr(args, flag) for flag, name in GIFA_FLAGS.items()},
        instruction_file=args.instruction_file, max_conversations=args.max_conversations, max_calls=args.max_calls,
        max_tokens=args.max_tokens, max_dollars=args.max_dollars, plan=args.plan,
        request_timeout=args.request_timeout, max_attempts=args.max_attempts, concurrency=args.concurrency,
        api_key_env=args.api_key_env, save_endpoint=args.save_endpoint, retry_failed=args.retry_failed,
        options=_parse_options(args.option), overwrite=args.overwrite, progress=not args.no_progress,
        redact=args.redact)
    if not 0.0 <= args.max_failed_share <= 1.0:
        raise IgftError(f"--max-failed-share must be between 0 and 1, got {args.max_failed_share}")
    done = run_labeling(request)
    if done.plan is not None:
        for line in done.plan.lines(done.settings["llm"], done.settings["embedder"]):
            print(line)
        return 0
    _print_summary(done.settings["labeler"], done.result, done.dataset, done.paths, done.settings["mode"], done.settings)
    return _failure_verdict(len(done.result.failures), len(done.dataset), args.max_failed_share)


def _failure_verdict(failed: int, total: int, max_share: float) -> int:
    """The last line says how many conversations failed; status 3 when more than max_share did."""
    if not failed:
        return 0
    share = failed / max(total, 1)
    if share > max_share:
        print(f"{failed} of {total} conversations failed ({share:.0%} > --max-failed-share {max_share:g}); "
              f"rerun with --retry-failed to relabel them")
        return EXIT_TOO_MANY_FAILED
    print(f"{failed} of {total} conversations failed ({share:.0%}); rerun with --retry-failed to relabel them")
    return 0


def _print_summary(labeler: str, result, dataset, paths: dict, mode: str, settings: dict) -> None:
    stats = result.stats
    n_intents = len(result.catalog)
    print(f"{labeler}: labeled {len(result.labels)}/{dataset.n_messages} messages of {len(dataset)} conversations "
          f"({len(result.failures)} failed) -> {n_intents} intents  [mode {mode}, llm {settings['llm'] if labeler != 'embeddings' else '-'}, "
          f"embedder {settings['embedder']}]")
    usage = stats.get("usage", {})
    runs = usage.get("runs", 1)
    scope = f"over {runs} runs in this folder" if runs > 1 else "this run"
    print(f"calls {usage.get('calls', stats.get('calls', 0))} (live {usage.get('live_calls', 0)}, "
          f"cached {usage.get('cached_calls', 0)}), tokens {usage.get('prompt_tokens', 0)}+"
          f"{usage.get('completion_tokens', 0)}, ${usage.get('dollars', 0):.4f} [{scope}]; retries "
          f"{stats.get('retries', 0)}, {stats.get('seconds', 0):.1f} s")
    if runs > 1:
        this = stats.get("usage_this_run", {})
        print(f"  this run: live calls {this.get('live_calls', 0)}, cached {this.get('cached_calls', 0)}, "
              f"${this.get('dollars', 0):.4f} (per-run breakdown in stats.json)")
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
