"""What the notebooks' first cells need: a config from the DUMMY_MODE toggle, an output folder, data.

Kept here (not in the notebooks) so the notebooks stay thin and the same code is tested.
"""
from __future__ import annotations

import os
from pathlib import Path

from igft.data import Dataset, load_conversations
from igft.pipeline.config import ConfigError, PipelineConfig, config_from_dict


def notebook_config(dummy_mode: bool, *, data: str | None = None, llm: str = "openai:gpt-4o",
                    embedder: str = "openai:text-embedding-3-small", cassette_dir: str | None = None,
                    **sections: dict) -> PipelineConfig:
    """DUMMY_MODE=True: replay the bundled recordings (no key, no network, the toy data).
    DUMMY_MODE=False: call `llm` / `embedder` (key from the environment, e.g. OPENAI_API_KEY), recording
    every call into `cassette_dir` (default runs/cassettes) so a rerun or a resumed run costs nothing.
    `sections` are optional stage1= / search= / stage2= dicts of PipelineConfig keys, or top-level keys
    such as paper_runs=PATH."""
    if dummy_mode:
        if data is not None:
            raise ConfigError("dummy mode replays the recordings of igft's toy conversations; set DATA_PATH = None, "
                              "or DUMMY_MODE = False to label your own data")
        values: dict = {"mode": "replay"}
    else:
        values = {"mode": "record", "data": data, "llm": llm, "embedder": embedder,
                  "cassette_dir": cassette_dir or str(Path("runs") / "cassettes")}
    values.update(sections)
    from igft.quiet import quiet_third_party

    quiet_third_party()  # a notebook shows igft's output, not third-party noise (IGFT_VERBOSE=1 shows it)
    return config_from_dict(values)


def notebook_output_dir(name: str) -> Path:
    """Where a notebook writes its artifacts: $IGFT_NOTEBOOK_OUT/<name>, else runs/notebooks/<name>."""
    root = Path(os.environ.get("IGFT_NOTEBOOK_OUT", Path("runs") / "notebooks"))
    out = root / name
    out.mkdir(parents=True, exist_ok=True)
    return out


def load_data(cfg: PipelineConfig) -> Dataset:
    """The configured conversations, or igft's toy conversations."""
    from igft.resources import toy_conversations_path

    return load_conversations(cfg.data or toy_conversations_path())


def find_paper_stage1(candidates: list[str | Path] | None = None) -> Path | None:
    """The paper repository's `Stage 1/` folder (recorded GPT-4o runs), if a clone is present.

    Looked for in $IGFT_PAPER_RUNS, $IGFT_PAPER_STAGE1 (or their `Stage 1/`), ./Intent-Guided-Fine-Tuning/Stage 1, ../Intent-Guided-Fine-Tuning/Stage 1
    and ../shared/external/paper_runs (the same files). None when absent (offline, no clone)."""
    paths = list(candidates or [])
    for variable in ("IGFT_PAPER_STAGE1", "IGFT_PAPER_RUNS"):  # IGFT_PAPER_RUNS: the demo's name for it
        if os.environ.get(variable):
            paths.insert(0, os.environ[variable])
            paths.insert(1, Path(os.environ[variable]) / "Stage 1")
    paths += [Path("Intent-Guided-Fine-Tuning") / "Stage 1", Path("..") / "Intent-Guided-Fine-Tuning" / "Stage 1",
              Path("..") / "shared" / "external" / "paper_runs"]
    for path in map(Path, paths):
        if (path / "toy_conversations.csv").is_file() and (path / "rpo_toy").is_dir():
            return path
    return None


def compute_backend() -> str:
    """What Stage 2 will use on this machine: QLoRA (4-bit NF4) on a CUDA GPU, LoRA in fp32 on CPU."""
    from igft.finetune.model_loading import select_backend

    backend = select_backend("auto")
    kind = {"qlora": "QLoRA (4-bit NF4)", "unsloth": "Unsloth QLoRA", "full": "LoRA"}.get(backend.kind, backend.kind)
    return f"{kind} in {backend.dtype} on {backend.device}"
