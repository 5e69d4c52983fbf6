"""One YAML file that describes a whole igft run (data, models, mode, backbone budget, Stage 2).

`igft demo --config FILE.yaml` and the notebooks read it; unknown keys are rejected with the list of
valid ones, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from igft.errors import IgftError

MODES = ("live", "record", "replay")
BACKBONES = ("random", "greedy", "see", "hyperband-see")


class ConfigError(IgftError):
    """A pipeline config file or value is invalid."""


@dataclass
class Stage1Config:
    labeler: str = field(default="gifa", metadata={"help": "gifa | embeddings | hybrid"})
    method: str = field(default="name", metadata={"help": "GIFA known-intent method: name | example | general"})
    top_k: int = field(default=5, metadata={"help": "retrieved similar labeled messages per message"})
    compare_labelers: bool = field(default=True, metadata={"help": "also run the embedding labelers and print a comparison table"})


@dataclass
class SearchConfig:
    """Which backbones run, and their options: the four keys here, plus any `igft optimize` option in `options`.

    Every option name, kind, default and help is igft.optimizers.options.options()'s (`igft optimize
    --help`): the pipeline, the CLI and run.json share one table. Defaults are that table's.
    """

    backbones: list[str] = field(default_factory=lambda: list(BACKBONES),
                                 metadata={"help": f"prompt-search backbones to run, any of {list(BACKBONES)}"})
    max_trials: int | None = field(default_factory=lambda: _option_default("max_trials"),
                                   metadata={"help": "stop each search after this many scored instructions (None: the backbone's own schedule)"})
    max_calls: int | None = field(default_factory=lambda: _option_default("max_calls"),
                                  metadata={"help": "stop each search before the live LLM call that would exceed this many live "
                                                    "calls, counted over every rerun in its output folder (as igft label / "
                                                    "optimize --max-calls); replays cost nothing"})
    concurrency: int = field(default_factory=lambda: _option_default("concurrency"),
                             metadata={"help": "instructions scored in parallel (results do not depend on it)"})
    options: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "any other igft optimize option by name, e.g. {feedback_rounds: 3, eta: 2, feedback_gold: names, "
                "missing: drop, split: [0.2, 0.5, 0.3]}; ignored by the bundled replay (it keeps its recorded settings)"})


# Optimize options that have their own key in the pipeline config: set them there, not again in `options`.
_TOP_LEVEL_OPTIONS = ("max_trials", "max_calls", "concurrency")
_OWN_KEYS = {**{name: f"search.{name}" for name in _TOP_LEVEL_OPTIONS}, "seed": "seed (top level)"}


def _option_default(name: str):
    from igft.optimizers.options import options

    return options()[name].default


def check_search_options(values: dict[str, Any], where: str = "search.options") -> dict[str, Any]:
    """The `search.options` mapping checked against the optimize option table (one ConfigError otherwise)."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of optimize option names to values, got {type(values).__name__}")
    twice = sorted(set(values) & set(_OWN_KEYS))
    if twice:
        raise ConfigError(f"{where}: {twice[0]} has its own key in the config; set {_OWN_KEYS[twice[0]]}, "
                          f"not {where}.{twice[0]}")
    return _check_options(values, where)


def _check_options(values: dict[str, Any], where: str) -> dict[str, Any]:
    from igft.optimizers.options import OptionError, check

    try:
        return check(values, where)
    except OptionError as exc:
        raise ConfigError(str(exc)) from None


@dataclass
class Stage2Config:
    enabled: bool = field(default=True, metadata={"help": "run Stage 2 (fine-tuning, generation, scores)"})
    format: str = field(default="intent+response", metadata={"help": "response | intent+response"})
    model: str = field(default="local:smollm2", metadata={"help": "model spec or HF id/path to fine-tune"})
    max_steps: int = field(default=24, metadata={"help": "training steps (the demo's default: enough to learn the Intents: / Responses: format on the toy data)"})
    batch_size: int = field(default=4, metadata={"help": "training samples per step"})
    learning_rate: float = field(default=1e-3, metadata={"help": "peak LoRA learning rate (high: the demo trains few steps)"})
    max_seq_len: int = field(default=192, metadata={"help": "tokens per training sample (older turns are trimmed first)"})
    eval_conversations: int = field(default=3, metadata={"help": "held-out conversations to generate replies for"})
    labels_from: str = field(default="gold", metadata={"help": "train on 'gold' intents or on Stage 1 'predicted' labels"})
    constrained_intents: bool = field(default=True, metadata={"help": "decode the Intents: block over the training intents (igft.finetune.constrained)"})
    max_new_tokens: int = field(default=48, metadata={"help": "generated tokens per held-out reply"})
    compare_base: bool = field(default=True, metadata={"help": "also score the base model (same prompts and decoding) beside the fine-tuned one"})


@dataclass
class PipelineConfig:
    data: str | None = field(default=None, metadata={"help": "conversation CSV/JSONL; empty = igft's toy conversations"})
    mode: str = field(default="replay", metadata={"help": "live | record | replay (dummy mode = replay of simulated_runs/)"})
    llm: str = field(default="local:smollm2", metadata={"help": "LLM spec: openai:gpt-4o, openai-compatible:URL:MODEL, local:smollm2, hf:PATH"})
    embedder: str = field(default="local:minilm", metadata={"help": "embedder spec: openai:MODEL, local:minilm"})
    cassette_dir: str | None = field(default=None, metadata={"help": "folder of cassettes; empty = the bundled simulated_runs/"})
    seed: int = field(default=0, metadata={"help": "seed of every random choice"})
    paper_runs: str | None = field(default=None, metadata={"help": "the paper's `Stage 1/` folder (or a clone of its repository): adds its GPT-4o GIFA and four searches; empty = $IGFT_PAPER_RUNS, else none"})
    stage1: Stage1Config = field(default_factory=Stage1Config)
    search: SearchConfig = field(default_factory=SearchConfig)
    stage2: Stage2Config = field(default_factory=Stage2Config)

    def validate(self) -> "PipelineConfig":
        if self.mode not in MODES:
            raise ConfigError(f"mode {self.mode!r} is not one of {list(MODES)}")
        unknown = [b for b in self.search.backbones if b not in BACKBONES]
        if unknown:
            raise ConfigError(f"search.backbones: unknown backbone(s) {unknown}; valid: {list(BACKBONES)}")
        check_search_options(self.search.options)
        _check_options({k: getattr(self.search, k) for k in _TOP_LEVEL_OPTIONS}, "search")
        if self.stage1.labeler not in ("gifa", "embeddings", "hybrid"):
            raise ConfigError(f"stage1.labeler {self.stage1.labeler!r} is not one of ['gifa', 'embeddings', 'hybrid']")
        if self.stage2.format not in ("response", "intent+response"):
            raise ConfigError(f"stage2.format {self.stage2.format!r} is not one of ['response', 'intent+response']")
        if self.stage2.labels_from not in ("gold", "predicted"):
            raise ConfigError(f"stage2.labels_from {self.stage2.labels_from!r} is not one of ['gold', 'predicted']")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(cls: type, values: Any, where: str):
    if values is None:
        return cls()
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping of keys to values, got {type(values).__name__}")
    hints = get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key(s) {unknown}; valid keys: {valid}")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, f"{where}.{name}" if where else name)
        else:
            _check_type(hint, value, f"{where}.{name}" if where else name)
            kwargs[name] = value
    return cls(**kwargs)


def _check_type(hint: Any, value: Any, where: str) -> None:
    """Reject a value of the wrong kind (e.g. max_steps: "ten") with the expected type named."""
    allowed = getattr(hint, "__args__", None) if not hasattr(hint, "__origin__") or hint.__origin__ is not list else None
    options = allowed if allowed and type(None) in allowed else (hint,)
    if value is None and type(None) in options:
        return
    for option in options:
        origin = getattr(option, "__origin__", option)
        if origin is list and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return
        if origin is dict and isinstance(value, dict):  # its keys and values are checked by validate()
            return
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return
        if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return
        if origin in (str, bool) and isinstance(value, origin):
            return
    expected = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise ConfigError(f"{where}: expected {expected}, got {value!r}")


def config_from_dict(values: dict | None) -> PipelineConfig:
    return _build(PipelineConfig, values or {}, "").validate()


def load_config(path: str | Path) -> PipelineConfig:
    """Read a pipeline YAML file; unknown keys are rejected with the list of valid ones."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist; write one like examples/demo.yaml")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    try:
        return config_from_dict(values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
