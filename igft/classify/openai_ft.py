"""The OpenAI fine-tuning workflow for a classification task.

export (chat-format JSONL, train / validation) -> validate (format, roles, token counts, cost
estimate) -> upload files -> create job -> poll status -> fetch results (fine-tuned model id, result
files, events). Every step goes through the `openai` SDK, so `base_url` points it at any server that
speaks the files + fine-tuning-jobs API. The job state is written to `job.json` after every step: a
rerun with the same out folder resumes polling instead of uploading and paying twice.

The fine-tuned model is evaluated through the client layer with the same system prompt it learned
(`igft.classify.baselines.PromptClassifier`, zero-shot).
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from igft.classify.prompting import chat_messages
from igft.classify.task import Task, json_answer
from igft.errors import IgftError

logger = logging.getLogger(__name__)

# USD per 1M training tokens (OpenAI list prices, 2025); pass price_per_million for anything else.
TRAINING_PRICES = {
    "gpt-4o-mini": 3.00, "gpt-4o-mini-2024-07-18": 3.00,
    "gpt-4o": 25.00, "gpt-4o-2024-08-06": 25.00,
    "gpt-4.1": 25.00, "gpt-4.1-2025-04-14": 25.00,
    "gpt-4.1-mini": 5.00, "gpt-4.1-mini-2025-04-14": 5.00,
    "gpt-4.1-nano": 1.50, "gpt-4.1-nano-2025-04-14": 1.50,
    "gpt-3.5-turbo": 8.00, "gpt-3.5-turbo-0125": 8.00,
}
ROLES = {"system", "user", "assistant"}
MIN_EXAMPLES = 10  # the API rejects smaller training files
TERMINAL = {"succeeded", "failed", "cancelled"}


class FineTuneError(IgftError):
    """The fine-tuning data or job is not usable as asked."""


def estimate_tokens(text: str) -> int:
    """Rough token count (about 4 characters per token for English; German runs a little higher).

    tiktoken needs its encoding files from the network, so igft estimates; the figure is labelled
    an estimate wherever it is shown.
    """
    return max(1, math.ceil(len(text) / 4))


def example_tokens(messages: Sequence[dict]) -> int:
    # ~3 tokens of chat framing per message, 3 for the reply primer (OpenAI cookbook's accounting)
    return sum(3 + estimate_tokens(str(m.get("content", ""))) for m in messages) + 3


def default_epochs(n_examples: int) -> int:
    """The API's documented default when n_epochs is 'auto': aim at ~3 passes, 100..25000 example-passes."""
    if n_examples * 3 < 100:
        return min(25, math.ceil(100 / max(n_examples, 1)))
    if n_examples * 3 > 25000:
        return max(1, 25000 // n_examples)
    return 3


def export_jsonl(task: Task, splits: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write train.jsonl / validation.jsonl (and test.jsonl) in chat format: system (taxonomy), user, assistant (JSON)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in ("train", "validation", "test"):
        frame = splits.get(name)
        if frame is None or frame.empty:
            continue
        path = out / f"{name}.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            for text, target in zip(task.texts(frame), task.targets(frame)):
                messages = chat_messages(task.schema, text)
                messages.append({"role": "assistant", "content": json_answer(target, task.field_names)})
                fh.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
        paths[name] = path
    return paths


@dataclass
class ValidationReport:
    path: str
    n_examples: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    total_tokens: int = 0
    max_example_tokens: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def validate_jsonl(path: str | Path, *, max_example_tokens: int = 65536, training: bool = True) -> ValidationReport:
    """Check every line: JSON object with `messages`, known roles, string content, ends with an assistant turn."""
    path = Path(path)
    report = ValidationReport(path=str(path))
    if not path.is_file():
        report.errors.append(f"{path} does not exist")
        return report
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            report.errors.append(f"{where}: not JSON ({err.msg})")
            continue
        messages = record.get("messages") if isinstance(record, dict) else None
        if not isinstance(messages, list) or not messages:
            report.errors.append(f"{where}: needs a non-empty 'messages' list")
            continue
        bad = [m for m in messages if not isinstance(m, dict) or m.get("role") not in ROLES]
        if bad:
            report.errors.append(f"{where}: role must be one of system/user/assistant, got {bad[0]!r:.60}")
            continue
        if any(not isinstance(m.get("content"), str) or not m["content"].strip() for m in messages):
            report.errors.append(f"{where}: every message needs non-empty string content")
            continue
        if messages[-1]["role"] != "assistant":
            report.errors.append(f"{where}: the last message must be the assistant's answer")
            continue
        tokens = example_tokens(messages)
        if tokens > max_example_tokens:
            report.warnings.append(f"{where}: ~{tokens} tokens, over the {max_example_tokens} limit; it will be truncated")
        report.n_examples += 1
        report.total_tokens += tokens
        report.max_example_tokens = max(report.max_example_tokens, tokens)
    if training and report.n_examples < MIN_EXAMPLES:
        report.errors.append(f"{path.name}: {report.n_examples} examples; the fine-tuning API needs at least {MIN_EXAMPLES}")
    return report


def training_price(model: str, price_per_million: float | None = None) -> float:
    if price_per_million is not None:
        return price_per_million
    if model in TRAINING_PRICES:
        return TRAINING_PRICES[model]
    raise FineTuneError(f"no training price known for {model!r}; pass --price-per-million (USD per 1M training tokens)")


@dataclass
class JobPlan:
    """What a job will do and cost (estimated), before anything is sent."""

    model: str
    train_file: str
    validation_file: str | None
    n_train: int
    train_tokens: int
    n_epochs: int
    billed_tokens: int
    price_per_million: float
    estimated_usd: float
    validation: list[dict] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"fine-tune {self.model} on {self.train_file} ({self.n_train} examples, ~{self.train_tokens} tokens)"]
        if self.validation_file:
            lines.append(f"validation file: {self.validation_file}")
        lines.append(f"epochs: {self.n_epochs}; billed tokens ~{self.billed_tokens} x ${self.price_per_million:.2f}/1M "
                     f"= ~${self.estimated_usd:.4f} (token counts estimated at ~4 characters per token)")
        lines.append("steps: upload files -> create job -> poll status -> fetch fine-tuned model id, result files, events")
        return "\n".join(lines)


def plan_job(train_file: str | Path, validation_file: str | Path | None = None, *, model: str = "gpt-4o-mini-2024-07-18",
             n_epochs: int | None = None, price_per_million: float | None = None) -> JobPlan:
    """Validate the files and estimate the cost; raise FineTuneError naming the first problem."""
    reports = [validate_jsonl(train_file)]
    if validation_file:
        reports.append(validate_jsonl(validation_file, training=False))
    for report in reports:
        if report.errors:
            more = f" (+{len(report.errors) - 1} more)" if len(report.errors) > 1 else ""
            raise FineTuneError(f"{report.errors[0]}{more}; fix the file or re-export it with igft classify export-openai")
    train = reports[0]
    epochs = n_epochs or default_epochs(train.n_examples)
    price = training_price(model, price_per_million)
    billed = train.total_tokens * epochs
    return JobPlan(model=model, train_file=str(train_file), validation_file=str(validation_file) if validation_file else None,
                   n_train=train.n_examples, train_tokens=train.total_tokens, n_epochs=epochs, billed_tokens=billed,
                   price_per_million=price, estimated_usd=billed * price / 1e6, validation=[r.to_dict() for r in reports])


def _client(base_url: str | None, api_key: str | None):
    import os

    import openai

    key = api_key or os.environ.get("OPENAI_API_KEY")
    if not key:
        if base_url is None:
            raise FineTuneError("OPENAI_API_KEY is not set; export it, or use --dry-run to see the plan and cost")
        key = "not-needed"  # a local OpenAI-compatible server usually ignores the key
    return openai.OpenAI(api_key=key, base_url=base_url, max_retries=2)


def run_job(plan: JobPlan, out_dir: str | Path, *, base_url: str | None = None, api_key: str | None = None,
            suffix: str | None = None, seed: int | None = 0, poll_interval: float = 30.0, timeout: float = 24 * 3600,
            client: Any = None, on_status: Callable[[dict], None] | None = None) -> dict:
    """Upload, create, poll to a terminal status, fetch results. Resumes from out_dir/job.json when present."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "job.json"
    state: dict = json.loads(state_path.read_text()) if state_path.is_file() else {}

    def save() -> None:
        state_path.write_text(json.dumps(state, indent=2))

    client = client or _client(base_url, api_key)
    import openai

    try:
        if "training_file_id" not in state:
            with open(plan.train_file, "rb") as fh:
                state["training_file_id"] = client.files.create(file=fh, purpose="fine-tune").id
            save()
        if plan.validation_file and "validation_file_id" not in state:
            with open(plan.validation_file, "rb") as fh:
                state["validation_file_id"] = client.files.create(file=fh, purpose="fine-tune").id
            save()
        if "job_id" not in state:
            kwargs: dict[str, Any] = {"model": plan.model, "training_file": state["training_file_id"],
                                      "hyperparameters": {"n_epochs": plan.n_epochs}}
            if state.get("validation_file_id"):
                kwargs["validation_file"] = state["validation_file_id"]
            if suffix:
                kwargs["suffix"] = suffix
            if seed is not None:
                kwargs["seed"] = seed
            job = client.fine_tuning.jobs.create(**kwargs)
            state.update(job_id=job.id, status=job.status)
            save()
        deadline = time.monotonic() + timeout
        while True:
            job = client.fine_tuning.jobs.retrieve(state["job_id"])
            state.update(status=job.status, fine_tuned_model=job.fine_tuned_model,
                         trained_tokens=getattr(job, "trained_tokens", None),
                         result_files=list(getattr(job, "result_files", None) or []),
                         error=(job.error.model_dump() if getattr(job, "error", None) else None))
            save()
            if on_status:
                on_status(dict(state))
            if job.status in TERMINAL:
                break
            if time.monotonic() > deadline:
                raise FineTuneError(f"job {state['job_id']} still {job.status} after {timeout:.0f}s; "
                                    f"rerun the same command to keep polling")
            time.sleep(poll_interval)
        events = client.fine_tuning.jobs.list_events(state["job_id"], limit=100)
        with open(out / "events.jsonl", "w", encoding="utf-8") as fh:
            for event in reversed(list(events.data)):  # the API lists newest first
                fh.write(json.dumps({"created_at": event.created_at, "level": event.level, "message": event.message}) + "\n")
        for file_id in state["result_files"]:
            content = client.files.content(file_id)
            (out / f"result_{file_id}.csv").write_bytes(content.read())
        save()
    except openai.APIError as err:
        save()
        raise FineTuneError(f"fine-tuning API error ({type(err).__name__}): {str(err).splitlines()[0][:200]}; "
                            f"state saved in {state_path}, rerun to resume") from err
    if state["status"] != "succeeded":
        raise FineTuneError(f"job {state['job_id']} ended {state['status']}: {state.get('error')}; see {out / 'events.jsonl'}")
    return state
