"""The paper's Stage-2 claim in miniature, on Schema-Guided Dialogue: does training on intent+response
(the reply's intents first, then the reply) beat response-only at an equal budget?

    python benchmarks/stage2_claim.py                      # the full run (results/stage2_sgd.md names its command)
    python benchmarks/stage2_claim.py --quick              # a few steps and a few turns (CI)

Data: `../shared/external/sgd` (or $IGFT_EXTERNAL_DATA/sgd): one igft conversation CSV per service. A
sample is one assistant turn: the last `--history` messages before it -> the reply (response-only) or
`Intents:\\n- act\\n...\\nResponses:\\n<reply>` (intent+response), where the intents are the turn's
dialogue acts (the gold label split on `__`). Training uses `sgd/train`; scoring uses assistant turns of
the `sgd/dev` services that no training file has (a fixed, seeded sample of them, the same for every row).

Equal budget: both formats train the bundled SmolLM2 with the same LoRA settings, the same seed, the
same optimizer steps and the same samples in the same order (one pass); they differ only in the target
text, so intent+response also sees its intents block (a few tokens more per sample).
Rows: base model (no fine-tune), response-only, intent+response, and the oracle (the intent+response
model given the gold intents block, continuing with the reply): the ceiling of intent guidance.
Intervals: paired bootstrap over dev turns (every seed's outputs for a turn resampled together) of
(intent+response minus response-only) on every reply metric.

The SGD CSVs are read by a light reader here (their gold labels such as `inform__request_alts` are free
strings, not the snake_case igft.data requires for Stage-1 labels).
"""
from __future__ import annotations

import os

# OpenMP threads that spin while waiting make torch 50-150x slower on a CPU shared with other jobs
# (measured here: one MiniLM query 1480 ms spinning vs 9 ms passive, 2 threads); set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import logging
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
METRICS = ("bleu", "rougeL", "bertscore_f1", "embedding_cosine")
ROLES = {"customer": "user", "assistant": "assistant"}
logger = logging.getLogger("stage2_claim")


def external_dir() -> Path:
    """$IGFT_EXTERNAL_DATA, else ../shared/external beside the repository."""
    return Path(os.environ.get("IGFT_EXTERNAL_DATA", REPO.parent / "shared" / "external"))


@dataclass
class TurnSample:
    service: str
    conversation: str
    position: int
    history: list[dict]  # chat messages before the reply (user / assistant)
    reply: str
    intents: list[str]


def read_service(path: Path, history: int) -> list[TurnSample]:
    """Assistant turns of one SGD service CSV (consecutive messages of one role merged).

    Read through igft.data.load_conversations (the paper's CSV layout; SGD's `act__act` gold labels are
    free strings there), so the file is checked the way every igft input is.
    """
    from igft.data import load_conversations

    samples = []
    for conv in load_conversations(path):
        turns: list[dict] = []
        for message in conv.messages:  # sorted by index inside the conversation
            role = ROLES[message.role]
            acts = [a for a in (message.intent or "").split("__") if a]
            if turns and turns[-1]["role"] == role:
                turns[-1]["content"] += "\n" + message.text
                turns[-1]["acts"] += [a for a in acts if a not in turns[-1]["acts"]]
            else:
                turns.append({"role": role, "content": message.text, "acts": acts})
        for t, turn in enumerate(turns):
            if turn["role"] == "assistant" and t > 0:
                past = [{"role": x["role"], "content": x["content"]} for x in turns[max(0, t - history):t]]
                samples.append(TurnSample(path.stem, str(conv.number), t, past, turn["content"], list(turn["acts"])))
    return samples


def target_text(sample: TurnSample, fmt: str) -> str:
    from igft.finetune.sft_data import format_target

    return format_target(sample.reply, sample.intents, fmt)


def system_messages(fmt: str, choice: str) -> list[dict]:
    """'none' (default: both formats see the same prompt tokens) or 'paper' (igft's per-format prompts)."""
    from igft.finetune.sft_data import resolve_system_prompt

    return [{"role": "system", "content": resolve_system_prompt(None, fmt)}] if choice == "paper" else []


def chat_sample(sample: TurnSample, fmt: str, system: str) -> dict:
    head = system_messages(fmt, system)
    return {"messages": head + sample.history + [{"role": "assistant", "content": target_text(sample, fmt)}]}


def oracle_prefix(sample: TurnSample) -> str:
    """The intent+response target up to the reply: what the oracle row is given."""
    return target_text(sample, "intent+response")[: -len(sample.reply)] if sample.reply else target_text(sample, "intent+response")


def train_adapter(train_samples: list[TurnSample], fmt: str, args, seed: int, out_dir: Path):
    """LoRA-fine-tune SmolLM2 on the samples for exactly args.steps steps; returns (model, tokenizer, seconds)."""
    from peft import get_peft_model
    from transformers import set_seed

    from igft.finetune.chat_template import prepare_tokenizer
    from igft.finetune.config import FinetuneConfig
    from igft.finetune.model_loading import load_causal_lm, make_lora_config
    from igft.finetune.train import make_trainer

    config = FinetuneConfig(model=args.model, format=fmt, quantize="none", max_steps=args.steps,
                            per_device_train_batch_size=args.batch_size, learning_rate=args.learning_rate,
                            max_seq_len=args.max_seq_len, seed=seed, eval_steps=0, save_steps=10 ** 9,
                            logging_steps=max(1, args.steps // 10), output_dir=str(out_dir)).validate()
    set_seed(seed)
    start = time.perf_counter()
    model, tokenizer = load_causal_lm(config.model, quantize="none", max_seq_len=config.max_seq_len)
    if prepare_tokenizer(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    peft_model = get_peft_model(model, make_lora_config(config.lora_r, config.lora_alpha, config.lora_dropout,
                                                        config.use_rslora, config.target_modules))
    samples = [chat_sample(s, fmt, args.system_prompt) for s in train_samples]
    trainer = make_trainer(peft_model, tokenizer, samples, [], config, out_dir / "checkpoints")
    output = trainer.train()
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    model = trainer.model.merge_and_unload()
    model.eval()
    return model, tokenizer, time.perf_counter() - start, {"train_loss": output.training_loss,
                                                          "first_loss": losses[0] if losses else None,
                                                          "last_loss": losses[-1] if losses else None}


def generate(model, tokenizer, prompts: list[list[dict]], prefixes: list[str], args) -> list[str]:
    """Greedy continuations of each chat prompt after its assistant-prefix text ('' for a plain reply)."""
    import torch

    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) + prefix
             for p, prefix in zip(prompts, prefixes)]
    out: list[str] = []
    for i in range(0, len(texts), args.gen_batch_size):
        enc = tokenizer(texts[i:i + args.gen_batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            ids = model.generate(**enc, max_new_tokens=args.max_new_tokens, do_sample=False, temperature=None,
                                 top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"))
        out.extend(tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True))
    return out


def run_row(model, tokenizer, dev: list[TurnSample], fmt: str, args, *, oracle: bool = False) -> dict:
    from igft.finetune.parsing import parse_output

    system = system_messages(fmt, args.system_prompt)
    prompts = [system + s.history for s in dev]
    prefixes = [oracle_prefix(s) if oracle else "" for s in dev]
    start = time.perf_counter()
    outputs = generate(model, tokenizer, prompts, prefixes, args)
    seconds = time.perf_counter() - start
    if oracle:
        parsed = [parse_output(o, "response") for o in outputs]
        intents = [s.intents for s in dev]
    else:
        parsed = [parse_output(o, fmt) for o in outputs]
        intents = [p.intents for p in parsed] if fmt == "intent+response" else None
    return {"replies": [p.reply or "" for p in parsed], "intents": intents, "outputs": outputs,
            "generate_s": seconds, "malformed": sum(bool(p.malformed) for p in parsed)}


class SampleScorer:
    """Per-turn BERTScore F1 (bundled MiniLM, layer 6) and embedding cosine; BLEU / ROUGE-L per resample."""

    def __init__(self):
        from sentence_transformers import SentenceTransformer

        from igft.llm.local_models import minilm_path

        self.minilm = str(minilm_path())
        self.st = SentenceTransformer(self.minilm, device="cpu")

    def per_turn(self, replies: list[str], refs: list[str]) -> dict[str, np.ndarray]:
        from bert_score import score as bert_score
        from rouge_score import rouge_scorer

        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
        rouge_l = np.array([scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(replies, refs)])
        bert = np.zeros(len(replies))
        keep = [i for i, (p, r) in enumerate(zip(replies, refs)) if p.strip() and r.strip()]
        if keep:  # an empty reply has no tokens to match: F1 0 (bert_score crashes on empty strings)
            _, _, f1 = bert_score([replies[i] for i in keep], [refs[i] for i in keep], model_type=self.minilm,
                                  num_layers=6, batch_size=32, verbose=False, device="cpu")
            bert[keep] = f1.numpy()
        a = self.st.encode(replies, normalize_embeddings=True, convert_to_numpy=True)
        b = self.st.encode(refs, normalize_embeddings=True, convert_to_numpy=True)
        return {"rougeL": rouge_l, "bertscore_f1": bert, "embedding_cosine": np.sum(a * b, axis=1)}


def corpus_bleu(replies: list[str], refs: list[str]) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(replies), [list(refs)]).score)


def row_metrics(per_seed: list[dict], refs: list[str], idx: np.ndarray | None = None) -> dict[str, float]:
    """Mean over seeds of each metric over the turns `idx` (all turns when None)."""
    idx = np.arange(len(refs)) if idx is None else idx
    values = {m: [] for m in METRICS}
    for run in per_seed:
        values["bleu"].append(corpus_bleu([run["replies"][i] for i in idx], [refs[i] for i in idx]))
        for m in METRICS[1:]:
            values[m].append(float(np.mean(run["scores"][m][idx])))
    return {m: float(np.mean(v)) for m, v in values.items()}


def paired_bootstrap(a: list[dict], b: list[dict], refs: list[str], n_boot: int, seed: int) -> dict[str, tuple]:
    """95% interval of metric(b) - metric(a), resampling turns (all seeds of a turn move together)."""
    rng = np.random.default_rng(seed)
    n = len(refs)
    base_a, base_b = row_metrics(a, refs), row_metrics(b, refs)
    diffs = {m: [] for m in METRICS}
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        ma, mb = row_metrics(a, refs, idx), row_metrics(b, refs, idx)
        for m in METRICS:
            diffs[m].append(mb[m] - ma[m])
    return {m: (base_b[m] - base_a[m], float(np.percentile(diffs[m], 2.5)), float(np.percentile(diffs[m], 97.5)))
            for m in METRICS}


def intent_bootstrap(runs: list[dict], gold: list[list[str]], n_boot: int, seed: int) -> dict[str, tuple]:
    from igft.finetune.scores import intent_scores

    def mean_scores(idx):
        per = [intent_scores([r["intents"][i] for i in idx], [gold[i] for i in idx]) for r in runs]
        return {k: float(np.mean([p[k] for p in per])) for k in ("intent_precision", "intent_recall", "intent_f1")}

    rng = np.random.default_rng(seed)
    point = mean_scores(np.arange(len(gold)))
    samples = [mean_scores(rng.integers(0, len(gold), len(gold))) for _ in range(n_boot)]
    return {k: (v, float(np.percentile([s[k] for s in samples], 2.5)), float(np.percentile([s[k] for s in samples], 97.5)))
            for k, v in point.items()}


def pick_dev_turns(dev_dir: Path, train_services: set[str], history: int, n: int) -> tuple[list[TurnSample], list[str]]:
    """A fixed sample of assistant turns from dev services absent from training, spread over services."""
    services = sorted(p.stem for p in dev_dir.glob("*.csv") if p.stem not in train_services)
    rng = random.Random(1234)  # fixed: every row and seed is scored on the same turns
    pools = {s: read_service(dev_dir / f"{s}.csv", history) for s in services}
    for pool in pools.values():
        rng.shuffle(pool)
    picked: list[TurnSample] = []
    while len(picked) < n and any(pools.values()):
        for s in services:
            if pools[s] and len(picked) < n:
                picked.append(pools[s].pop())
    return picked, services


def verdict(diff: dict[str, tuple]) -> str:
    """One plain sentence per metric: does the 95% interval of (intent+response - response-only) exclude 0?"""
    parts = []
    for m in METRICS:
        _, low, high = diff[m]
        parts.append(f"{m}: " + ("intent+response better" if low > 0 else "response-only better" if high < 0
                                 else "no significant difference"))
    return "Finding (95% paired bootstrap, intent+response vs response-only): " + "; ".join(parts) + "."


def run_key(args) -> str:
    """Settings that change a trained row's outputs (a cached row is reused only under the same ones)."""
    import hashlib

    keys = ("model", "steps", "batch_size", "learning_rate", "max_seq_len", "history", "dev_turns", "max_new_tokens",
            "system_prompt")
    return hashlib.sha256(json.dumps({k: getattr(args, k) for k in keys}).encode()).hexdigest()[:12]


def fmt_row(name: str, runs: list[dict], refs: list[str]) -> list[str]:
    per_seed = [row_metrics([r], refs) for r in runs]
    cells = [name]
    for m in METRICS:
        vals = [p[m] for p in per_seed]
        scale = 1.0 if m == "bleu" else 100.0
        cells.append(f"{np.mean(vals) * scale:.2f}" + (f" ± {np.std(vals) * scale:.2f}" if len(vals) > 1 else ""))
    return cells


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI size: 2 steps of 1 sample, 1 seed, 2 dev turns, 8 new tokens")
    parser.add_argument("--model", default="smollm2", help="base model (alias, folder or HF id available offline)")
    parser.add_argument("--steps", type=int, default=16, help="optimizer steps per model (equal for both formats)")
    parser.add_argument("--batch-size", type=int, default=4, help="training samples per step")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="LoRA learning rate (high: few steps)")
    parser.add_argument("--system-prompt", default="none", choices=["none", "paper"],
                        help="none: no system message in either format; paper: igft's plain / two-step prompts")
    parser.add_argument("--max-seq-len", type=int, default=256, help="token cap of a training sample")
    parser.add_argument("--history", type=int, default=1, help="messages of history before each reply")
    parser.add_argument("--seeds", default="0,1,2", help="comma list of training seeds")
    parser.add_argument("--dev-turns", type=int, default=30, help="assistant turns of unseen dev services scored")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--gen-batch-size", type=int, default=15)
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("IGFT_THREADS", "2")))
    parser.add_argument("--out", default="runs/stage2_claim", help="folder for predictions and the JSON summary")
    parser.add_argument("--results", help="also write this markdown results file")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.seeds, args.dev_turns, args.max_new_tokens, args.bootstrap = 2, "0", 2, 8, 20
        args.batch_size, args.max_seq_len, args.history = 1, 128, 1
    logging.basicConfig(level=logging.WARNING)
    sgd = external_dir() / "sgd"
    if not (sgd / "train").is_dir() or not (sgd / "dev").is_dir():
        print(f"SKIP: {sgd}/train and {sgd}/dev not found; set IGFT_EXTERNAL_DATA to the folder holding sgd/")
        return 0

    import torch

    torch.set_num_threads(args.threads)
    wall = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    train_files = sorted((sgd / "train").glob("*.csv"))
    train_pool = [s for f in train_files for s in read_service(f, args.history)]
    dev, dev_services = pick_dev_turns(sgd / "dev", {f.stem for f in train_files}, args.history, args.dev_turns)
    refs = [s.reply for s in dev]
    gold = [s.intents for s in dev]
    n_train = args.steps * args.batch_size
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scorer = SampleScorer()

    from igft.finetune.model_loading import load_causal_lm
    from igft.finetune.chat_template import prepare_tokenizer

    rows: dict[str, list[dict]] = {"base": [], "response-only": [], "intent+response": [], "oracle (gold intents)": []}
    base_model, base_tok = load_causal_lm(args.model, quantize="none")
    if prepare_tokenizer(base_tok):
        base_model.resize_token_embeddings(len(base_tok))
    rows["base"].append(run_row(base_model.eval(), base_tok, dev, "response", args))
    del base_model
    train_info = []
    for seed in seeds:
        # one pass over n_train samples; the same samples in the same order for both formats
        chosen = random.Random(seed).sample(train_pool, min(n_train, len(train_pool)))
        for fmt, name in (("response", "response-only"), ("intent+response", "intent+response")):
            cache = out / f"{fmt}_seed{seed}" / f"rows_{run_key(args)}.json"
            if cache.is_file():  # a finished (seed, format) of an interrupted run with the same settings
                done = json.loads(cache.read_text(encoding="utf-8"))
            else:
                model, tok, seconds, losses = train_adapter(chosen, fmt, args, seed, out / f"{fmt}_seed{seed}")
                done = {"info": {"seed": seed, "format": fmt, "train_s": round(seconds, 1), **losses},
                        "rows": [run_row(model, tok, dev, fmt, args)]}
                if fmt == "intent+response":
                    done["rows"].append(run_row(model, tok, dev, fmt, args, oracle=True))
                del model
                cache.parent.mkdir(parents=True, exist_ok=True)
                cache.write_text(json.dumps(done), encoding="utf-8")
            rows[name].append(done["rows"][0])
            if fmt == "intent+response":
                rows["oracle (gold intents)"].append(done["rows"][1])
            train_info.append(done["info"])
            logger.warning("seed %s %s done (train %.0f s)", seed, fmt, done["info"]["train_s"])
    for runs in rows.values():
        for run in runs:
            run["scores"] = scorer.per_turn(run["replies"], refs)
    for name, runs in rows.items():
        with open(out / f"predictions_{name.split()[0]}.jsonl", "w", encoding="utf-8") as f:
            for k, run in enumerate(runs):
                for i, s in enumerate(dev):
                    f.write(json.dumps({"run": k, "service": s.service, "conversation": s.conversation, "turn": s.position,
                                        "reference": s.reply, "gold_intents": s.intents, "output": run["outputs"][i],
                                        "reply": run["replies"][i]}, ensure_ascii=False) + "\n")

    header = ["row", "BLEU", "ROUGE-L x100", "BERTScore-F1 x100 (MiniLM)", "cosine x100"]
    table = markdown_table(header, [fmt_row(name, runs, refs) for name, runs in rows.items()])
    diff = paired_bootstrap(rows["response-only"], rows["intent+response"], refs, args.bootstrap, seed=7)
    oracle_diff = paired_bootstrap(rows["response-only"], rows["oracle (gold intents)"], refs, args.bootstrap, seed=8)
    scale = {"bleu": 1.0}
    diff_rows = [[m] + [f"{d[0] * scale.get(m, 100):+.2f} [{d[1] * scale.get(m, 100):+.2f}, {d[2] * scale.get(m, 100):+.2f}]"
                        for d in (diff[m], oracle_diff[m])] for m in METRICS]
    diff_table = markdown_table(["metric", "intent+response - response-only (95% CI)", "oracle - response-only (95% CI)"],
                                diff_rows)
    intents = intent_bootstrap(rows["intent+response"], gold, args.bootstrap, seed=9)
    finding = verdict(diff)
    intent_table = markdown_table(["intents block (intent+response)", "value (95% CI)"],
                                  [[k.replace("intent_", ""), f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]"] for k, v in intents.items()])
    wall_s = time.perf_counter() - wall
    malformed = {name: [r["malformed"] for r in runs] for name, runs in rows.items()}
    summary = (f"{len(train_pool)} assistant turns in sgd/train ({len(train_files)} services); each model trained "
               f"{args.steps} steps x {args.batch_size} samples = {min(n_train, len(train_pool))} samples, one pass; "
               f"seeds {seeds}; scored on {len(dev)} assistant turns of {len(dev_services)} unseen dev services "
               f"({', '.join(dev_services)}); history {args.history} messages; greedy, max {args.max_new_tokens} new "
               f"tokens; system prompt: {args.system_prompt}; learning rate {args.learning_rate}; {args.bootstrap} bootstrap resamples; wall time {wall_s / 60:.1f} min")
    text = "\n\n".join([summary, table, diff_table, intent_table, finding,
                        "malformed intent+response outputs per seed: " + json.dumps(malformed)])
    print(text)
    (out / "summary.json").write_text(json.dumps({
        "args": vars(args), "wall_s": wall_s, "train": train_info, "dev_services": dev_services,
        "rows": {name: [row_metrics([r], refs) for r in runs] for name, runs in rows.items()},
        "diff_intent_response_minus_response": diff, "diff_oracle_minus_response": oracle_diff,
        "intents": intents, "malformed": malformed}, indent=2), encoding="utf-8")
    if args.results:
        command = "python benchmarks/stage2_claim.py " + " ".join(argv if argv is not None else sys.argv[1:])
        Path(args.results).write_text(results_markdown(command, text, train_info), encoding="utf-8")
    return 0


def results_markdown(command: str, text: str, train_info: list[dict]) -> str:
    losses = "\n".join(f"- seed {t['seed']} {t['format']}: train {t['train_s']} s, loss {t['first_loss']:.3f} -> "
                       f"{t['last_loss']:.3f}" for t in train_info if t["first_loss"] is not None)
    return (f"# Stage 2 claim in miniature: Schema-Guided Dialogue\n\nProduced by:\n\n```\n{command}\n```\n\n"
            f"Machine: 2-core CPU, this sandbox (shared with other jobs), bundled SmolLM2-135M-Instruct, LoRA r=16.\n\n"
            f"{text}\n\nTraining:\n{losses}\n")


if __name__ == "__main__":
    sys.exit(main())
